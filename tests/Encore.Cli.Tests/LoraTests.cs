using System.Security.Cryptography;
using System.Text.Json;
using Encore.Formats;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// LoRA end to end: <c>train --lora-rank</c> writes a PEFT adapter and leaves the base's bytes alone while
/// the loss falls; <c>generate --adapter</c> and the <c>merge</c>d checkpoint give the same text; an adapter
/// of another base is refused before generating, naming the layer.
/// </summary>
public sealed class LoraTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-lora-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string Hash(string dir) => string.Join(",", Directory.GetFiles(dir).Order(StringComparer.Ordinal)
        .Select(f => Path.GetFileName(f) + ":" + Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))));

    [Fact]
    public void TrainingAnAdapterLowersTheLossAndLeavesTheBaseUntouched()
    {
        // A memorization task: each source maps to its own made-up word, which the untrained base cannot know.
        var pairs = Enumerable.Range(0, 16).Select(i => new TextPair($"package {i} of the archive", $"zq{(char)('a' + i)}x")).ToList();
        string data = Path.Combine(_dir, "data.jsonl"), baseDir = Path.Combine(_dir, "base"), run = Path.Combine(_dir, "lora");
        File.WriteAllLines(data, pairs.Select(p => JsonSerializer.Serialize(new { source = p.Source, target = p.Target })));
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        TestCheckpoints.Save(baseDir, "tiny-encdec", tokenizer);
        string before = Hash(baseDir);

        var r = CliRunner.Run("train", "-m", baseDir, "--data", data, "--validation", data, "--lora-rank", "4", "--lora-alpha", "8",
            "--lora-targets", "q,k,v,o,ffn", "--steps", "40", "--lr", "1e-2", "--warmup", "2", "--eval-every", "40", "--save-every", "40",
            "--eval-examples", "0", "--out", run, "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var events = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var start = events.First(e => e.GetProperty("event").GetString() == "start");
        long trainable = start.GetProperty("trainable_parameters").GetInt64(), all = start.GetProperty("parameters").GetInt64();
        Assert.InRange(trainable, 1, all / 5);
        var losses = events.Where(e => e.GetProperty("event").GetString() == "step").Select(e => e.GetProperty("loss").GetDouble()).ToList();
        Assert.Equal(40, losses.Count);
        Assert.True(losses.TakeLast(5).Average() < 0.6 * losses.Take(5).Average(), $"loss {losses.Take(5).Average():0.000} → {losses.TakeLast(5).Average():0.000}");

        Assert.Equal(before, Hash(baseDir));   // the base's files, byte for byte
        var checkpoint = Path.Combine(run, "checkpoint-40");
        Assert.True(File.Exists(Path.Combine(checkpoint, PeftAdapter.ConfigFile)));
        Assert.False(File.Exists(Path.Combine(checkpoint, "model.safetensors")));
        using (var file = SafetensorsFile.Open(Path.Combine(checkpoint, PeftAdapter.WeightsFile)))
        {
            Assert.All(file.Names, n => Assert.Matches(@"^base_model\.model\..*\.lora_[AB]\.weight$", n));
            Assert.Equal(trainable, file.Names.Sum(n => file[n].Shape.Aggregate(1L, (a, b) => a * b)));
            var b = file.Names.First(n => n.EndsWith(".lora_B.weight", StringComparison.Ordinal));
            using var t = file.Read(b);
            Assert.Contains(t.ToFloatArray(), v => v != 0);   // B started at zero and was trained
        }
        var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, PeftAdapter.ConfigFile))).RootElement;
        Assert.Equal(Path.GetFullPath(baseDir), config.GetProperty("base_model_name_or_path").GetString());
        Assert.Equal(4, config.GetProperty("r").GetInt32());

        // The adapter over the base and the merged checkpoint answer alike, and unlike the base alone.
        string merged = Path.Combine(_dir, "merged");
        var m = CliRunner.Run("merge", "-m", baseDir, "--adapter", run, "--out", merged, "--json");
        Assert.True(m.ExitCode == 0, m.Stderr);
        Assert.Equal(before, Hash(baseDir));
        string Generate(params string[] extra)
        {
            var g = CliRunner.Run(["generate", "--prompt", pairs[3].Source, "--max-new-tokens", "6", "--json", "--threads", "1", .. extra]);
            Assert.True(g.ExitCode == 0, g.Stderr);
            return JsonDocument.Parse(g.Stdout).RootElement.GetProperty("text").GetString()!;
        }
        string adapted = Generate("-m", baseDir, "--adapter", run);
        Assert.Equal(adapted, Generate("-m", merged));
        Assert.NotEqual(adapted, Generate("-m", baseDir));

        // An adapter of another base (one more encoder layer) is refused before anything is generated, naming the layer.
        string deeper = Path.Combine(_dir, "deeper");
        var cfg = Presets.Get("tiny-encdec");
        using (var model = LanguageModel.Create(TrainingRun.ForTokenizer(cfg with { EncoderLayers = cfg.EncoderLayers + 1 }, tokenizer), seed: 1))
            Checkpoint.Save(model, deeper);
        TrainingRun.SaveTokenizer(tokenizer, deeper);
        var wrong = CliRunner.Run("generate", "-m", deeper, "--adapter", run, "--prompt", "x", "--max-new-tokens", "2", "--threads", "1");
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Contains($"encoder.layers.{cfg.EncoderLayers}.self_attn.q_proj", wrong.Stderr);
        Assert.Contains("another base", wrong.Stderr);
        Assert.Equal("", wrong.Stdout.Trim());
    }
}

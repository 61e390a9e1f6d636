using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// A tiny checkpoint in BART's published layout (config.json with "model_type": "bart", HF tensor names)
/// through the commands: generate, eval, forward and train -m read it; convert --to gguf refuses it by name.
/// </summary>
public sealed class BartCliTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-bart-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // A memorization task: each source maps to its own made-up word.
    (string Model, string Data) TinyBart()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} of the archive", $"zq{(char)('a' + i)}x")).ToList();
        string data = Path.Combine(_dir, "data.jsonl"), model = Path.Combine(_dir, "bart");
        File.WriteAllLines(data, pairs.Select(p => JsonSerializer.Serialize(new { source = p.Source, target = p.Target })));
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        var special = (Pad: tokenizer.PadId, Bos: tokenizer.BosId, Eos: tokenizer.EosId);
        var json = new JsonObject
        {
            ["model_type"] = "bart", ["vocab_size"] = tokenizer.VocabSize, ["d_model"] = 32, ["encoder_layers"] = 2, ["decoder_layers"] = 2,
            ["encoder_attention_heads"] = 4, ["decoder_attention_heads"] = 4, ["encoder_ffn_dim"] = 64, ["decoder_ffn_dim"] = 64,
            ["max_position_embeddings"] = 64, ["dropout"] = 0.0, ["pad_token_id"] = special.Pad, ["bos_token_id"] = special.Bos,
            ["eos_token_id"] = special.Eos, ["decoder_start_token_id"] = special.Eos,
        };
        var config = new BartArchitecture().ReadConfig(JsonNode.Parse(json.ToJsonString())!.AsObject(), "config.json");   // as read from a file
        using (var m = LanguageModel.Create(config, seed: 2)) Checkpoint.Save(m, model, "bart");
        TrainingRun.SaveTokenizer(tokenizer, model);
        Assert.Equal("bart", (string?)JsonNode.Parse(File.ReadAllText(Path.Combine(model, "config.json")))!["model_type"]);
        return (model, data);
    }

    [Fact]
    public void GenerateEvalForwardAndTrainReadABartCheckpoint()
    {
        var (model, data) = TinyBart();

        var gen = CliRunner.Run("generate", "-m", model, "--prompt", "package 3 of the archive", "--max-new-tokens", "4", "--json");
        Assert.True(gen.ExitCode == 0, gen.Stderr);
        var result = JsonDocument.Parse(gen.Stdout).RootElement;
        Assert.Equal(JsonValueKind.String, result.GetProperty("text").ValueKind);

        var eval = CliRunner.Run("eval", "-m", model, "--data", data, "--examples", "4", "--max-new-tokens", "3", "--json");
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        Assert.Contains("loss", eval.Stdout);

        var forward = CliRunner.Run("forward", "-m", model, "--input-ids", "5,6,7", "--decoder-input-ids", "2", "--out", Path.Combine(_dir, "logits.npy"), "--json");
        Assert.True(forward.ExitCode == 0, forward.Stderr);

        string run = Path.Combine(_dir, "run");
        var train = CliRunner.Run("train", "-m", model, "--data", data, "--steps", "30", "--lr", "1e-2", "--warmup", "2", "--eval-every", "30",
            "--save-every", "30", "--eval-examples", "0", "--out", run, "--threads", "1", "--json");
        Assert.True(train.ExitCode == 0, train.Stderr);
        var losses = train.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("event").GetString() == "step").Select(e => e.GetProperty("loss").GetDouble()).ToList();
        Assert.Equal(30, losses.Count);
        Assert.True(losses.TakeLast(5).Average() < 0.7 * losses.Take(5).Average(), $"loss {losses.Take(5).Average():0.000} → {losses.TakeLast(5).Average():0.000}");
        // The trained checkpoint keeps the BART options and decodes.
        var trained = Path.Combine(run, "checkpoint-30");
        var (config, _) = Checkpoint.ReadConfig(trained);
        Assert.True(config.FinalLogitsBias && config.EmbeddingNorm && config.PostNorm);
        Assert.Equal(2, config.DecoderPositions.LearnedOffset);
        var again = CliRunner.Run("generate", "-m", trained, "--prompt", "package 3 of the archive", "--max-new-tokens", "4", "--json");
        Assert.True(again.ExitCode == 0, again.Stderr);
    }

    [Fact]
    public void ConvertToGgufRefusesNamingTheMissingArchitecture()
    {
        var (model, _) = TinyBart();
        string gguf = Path.Combine(_dir, "bart.gguf");
        var r = CliRunner.Run("convert", "--model", model, "--to", "gguf", "--out", gguf);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("llama.cpp has no BART, mBART or Marian architecture", r.Stderr);
        Assert.False(File.Exists(gguf));
    }
}

using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore adapt</c> end to end on tiny decoder-only checkpoints made here: the encoder–decoder it writes
/// trains (prefix-lm, ul2 with the cross-attention-only warm-up) and generates like any checkpoint; bad
/// inputs fail with one line naming the directory, file or field, and write nothing.
/// </summary>
public sealed class AdaptTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-adapt-cli-").FullName;
    readonly string _corpus;
    readonly Encore.Formats.Tokenization.ByteLevelBpeTextTokenizer _tokenizer;

    public AdaptTests()
    {
        var lines = Enumerable.Range(0, 40).Select(i => $"package {i} parses images and fonts for the tools of release {i % 5}").ToList();
        _corpus = Path.Combine(_dir, "corpus.txt");
        File.WriteAllLines(_corpus, lines);
        _tokenizer = BundledData.TrainTokenizer(lines.Select(l => new TextPair(l, "")), vocabSize: 400);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Checkpoint(string name, string preset, Func<ModelConfig, ModelConfig>? change = null)
    {
        var dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(dir);
        var config = (change ?? (c => c))(TrainingRun.ForTokenizer(Presets.Get(preset), _tokenizer));
        using var model = LanguageModel.Create(config, seed: 3);
        Formats.Checkpoints.Checkpoint.Save(model, dir);
        TrainingRun.SaveTokenizer(_tokenizer, dir);
        return dir;
    }

    static JsonElement Json(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement;
    }

    static double LastLoss(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        return r.Stdout.Split('\n').Where(l => l.Contains("\"event\":\"step\"")).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("loss").GetDouble()).Last();
    }

    [Fact]
    public void AnAdaptedCheckpointTrainsAndGenerates()
    {
        var source = Checkpoint("decoder", "tiny-decoder");
        var output = Path.Combine(_dir, "encdec");
        var j = Json(CliRunner.Run("adapt", "--from", source, "--out", output, "--json"));
        Assert.Equal(3, j.GetProperty("encoder_layers").GetInt32());
        Assert.Equal(3, j.GetProperty("decoder_layers").GetInt32());
        Assert.Equal("copy", j.GetProperty("cross_attention").GetString());
        Assert.Equal(0, j.GetProperty("fresh").GetInt32());
        Assert.Equal(_tokenizer.BosId, j.GetProperty("decoder_start_token_id").GetInt32());
        Assert.Contains("tokenizer.json", j.GetProperty("copied").EnumerateArray().Select(x => x.GetString()));
        using (var m = Formats.Checkpoints.Checkpoint.Load(output))
            Assert.IsType<EncoderDecoderModel>(m);

        var run = Path.Combine(_dir, "run");
        var train = CliRunner.Run("train", "-m", output, "--data", _corpus, "--objective", "prefix-lm", "--steps", "6", "--warmup", "1", "--lr", "3e-3",
            "--eval-every", "6", "--save-every", "6", "--eval-examples", "0", "--out", run, "--threads", "1", "--json");
        Assert.True(double.IsFinite(LastLoss(train)));

        var g = Json(CliRunner.Run("generate", "--model", run, "--prompt", "package 3 parses", "--max-new-tokens", "5", "--min-new-tokens", "5", "--threads", "1", "--json"));
        Assert.Equal(5, g.GetProperty("tokens").GetArrayLength());
    }

    [Fact]
    public void AnUnbalancedAdaptationWarmsUpItsFreshCrossAttentionUnderUl2()
    {
        // Unbalanced in depth and in width, as T5Gemma 9B-2B: the encoder source is deeper and wider.
        var big = Checkpoint("big", "tiny-decoder", c => c with { DecoderLayers = 4, DModel = 48, FfnDim = 96 });
        var small = Checkpoint("small", "tiny-decoder", c => c with { DecoderLayers = 2 });
        var output = Path.Combine(_dir, "4-2");
        var text = CliRunner.Run("adapt", "--from", big, "--decoder-from", small, "--out", output);
        Assert.True(text.ExitCode == 0, text.Stderr);
        Assert.Contains("width 48 (encoder) / 32 (decoder)", text.Stdout);
        Assert.Contains("cross-attention: fresh", text.Stdout);
        Assert.Contains("--warmup-cross-attention-only", text.Stdout);
        var run = Path.Combine(_dir, "ul2");
        var train = CliRunner.Run("train", "-m", output, "--data", _corpus, "--objective", "ul2", "--warmup-cross-attention-only", "3", "--steps", "5", "--warmup", "1",
            "--eval-every", "5", "--save-every", "5", "--eval-examples", "0", "--out", run, "--threads", "1", "--json");
        Assert.True(double.IsFinite(LastLoss(train)));
        Assert.True(Directory.Exists(Path.Combine(run, "checkpoint-5")));
        var g = Json(CliRunner.Run("generate", "--model", run, "--prompt", "package 3 parses", "--max-new-tokens", "4", "--min-new-tokens", "4", "--threads", "1", "--json"));
        Assert.Equal(4, g.GetProperty("tokens").GetArrayLength());
    }

    [Fact]
    public void BadInputsFailWithOneLineNamingWhatDoesNotFit()
    {
        var decoder = Checkpoint("decoder", "tiny-decoder");
        var output = Path.Combine(_dir, "out");
        void Fails(string expected, params string[] args)
        {
            CliRunner.AssertOneLineError(CliRunner.Run(args), expected);
            Assert.False(Directory.Exists(output), $"{string.Join(' ', args)} left {output}");
        }
        var missing = Path.Combine(_dir, "missing");
        Fails($"{missing}: no such directory", "adapt", "--from", missing, "--out", output);
        var encoder = Checkpoint("encoder", "tiny-encoder");
        Fails($"{Path.Combine(encoder, "config.json")} (model_type encore) is an encoder-only model", "adapt", "--from", encoder, "--out", output);
        var encdec = Checkpoint("encdec", "tiny-encdec");
        Fails("is already an encoder–decoder", "adapt", "--from", encdec, "--out", output);
        var words = Checkpoint("words", "tiny-decoder", c => c with { VocabSize = c.VocabSize + 16 });
        Fails($"{Path.Combine(words, "config.json")} does not fit", "adapt", "--from", decoder, "--decoder-from", words, "--out", output);
        Fails("vocab_size", "adapt", "--from", decoder, "--decoder-from", words, "--out", output);
        var wide = Checkpoint("wide", "tiny-decoder", c => c with { DModel = 48 });
        Fails("cross-attention cannot be copied from self-attention", "adapt", "--from", wide, "--decoder-from", decoder, "--cross-attention", "copy", "--out", output);
        Fails("encoder_layers 9 is outside the blocks of", "adapt", "--from", decoder, "--encoder-layers", "9", "--out", output);
        Fails("--cross-attention 'maybe' is not one of auto, copy, fresh", "adapt", "--from", decoder, "--cross-attention", "maybe", "--out", output);
        Fails("needs an encoder–decoder model", "train", "-m", decoder, "--data", _corpus, "--warmup-cross-attention-only", "2", "--steps", "3", "--out", output);
    }
}

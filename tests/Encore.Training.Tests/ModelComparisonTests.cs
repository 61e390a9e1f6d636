using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Training.Tests;

public sealed class ModelComparisonTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-compare-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static List<TextPair> Pairs(int n) => DatasetReader.ReadPairs(TestData.Path(BundledData.WordNetValidation)).Take(n).ToList();

    // A checkpoint of an untrained preset (seed 0) with its tokenizer, as training writes one.
    string Save(string preset, TextTokenizer tokenizer, string relative)
    {
        var dir = Path.Combine(_dir, relative);
        Directory.CreateDirectory(dir);
        using var model = TrainingRun.LoadModel(preset, tokenizer);
        Checkpoint.Save(model, dir);
        TrainingRun.SaveTokenizer(tokenizer, dir);
        return dir;
    }

    static readonly Lazy<ByteLevelBpeTextTokenizer> OtherTokenizer = new(() => BundledData.TrainTokenizer(Pairs(400), vocabSize: 400, sentinels: 0));

    [Theory]
    [InlineData("tiny-encdec")]
    [InlineData("tiny-decoder")]
    public void DecodingSpeedIsPositiveAndItsCacheIsWhatTheSessionAllocates(string preset)
    {
        var tok = TestData.Tokenizer;
        var pairs = Pairs(4);
        using var model = TrainingRun.LoadModel(preset, tok);
        var speed = DecodingSpeed.Measure(model, tok, pairs, new DecodingSpeedOptions { Prompts = 3 });
        Assert.Equal(3, speed.Prompts);
        Assert.Equal(16, speed.NewTokens);
        Assert.True(speed.FirstTokenMs > 0);
        Assert.True(speed.DecodeTokensPerSecond > 0);

        // Worked by hand from the presets: tiny-encdec has 1 decoder layer, tiny-decoder 3, both 2 KV heads of
        // 8 dims, so a position costs layers × 2 (K, V) × 2 × 8 × 4 bytes. The encoder–decoder holds the
        // source's cross-attention keys plus the start token and 16 new tokens; the decoder-only model the
        // prompt and 16 new tokens.
        bool encDec = preset == "tiny-encdec";
        long perPosition = (encDec ? 1 : 3) * 2 * 2 * 8 * 4;
        var lengths = pairs.Take(3).Select(p => GenerationEval.PromptIds(model, tok, p.Source).Length).ToList();
        long expected = lengths.Max(s => perPosition * (encDec ? s + 1 + 16 : s + 16));
        Assert.Equal(expected, speed.CacheBytesPerRequest);

        // The formula is the memory a generation session really allocates for one request.
        var ids = GenerationEval.PromptIds(model, tok, pairs[0].Source);
        using var session = GenerationSession.Create(model, [ids], 1, 16, model.Config.DecoderStartTokenId);
        long held = session.Cache.Self.Sum(c => c.Bytes) + (session.Cache.Cross?.Sum(c => c.Bytes) ?? 0);
        Assert.Equal(held, DecodingSpeed.CacheBytes(model.Config, ids.Length, 16));
        Assert.Equal(encDec, session.Cache.Cross != null);
    }

    [Fact]
    public void DecodingSpeedRejectsBadSettings()
    {
        using var model = TrainingRun.LoadModel("tiny-encdec", TestData.Tokenizer);
        Assert.Throws<ArgumentException>(() => DecodingSpeed.Measure(model, TestData.Tokenizer, Pairs(2), new DecodingSpeedOptions { Prompts = 0 }));
        Assert.Throws<ArgumentException>(() => DecodingSpeed.Measure(model, TestData.Tokenizer, []));
        Assert.Contains("warm-up must be in [0, 60] seconds, got -1",
            Assert.Throws<ArgumentException>(() => DecodingSpeed.Measure(model, TestData.Tokenizer, Pairs(2), new DecodingSpeedOptions { WarmupSeconds = -1 })).Message);
    }

    [Fact]
    public void SeveralModelsAreScoredOnTheSameExamplesEachWithItsOwnTokenizer()
    {
        var ed = Save("tiny-encdec", TestData.Tokenizer, "runs/ed/checkpoint-2");
        var dec = Save("tiny-decoder", OtherTokenizer.Value, "dec");
        var pairs = Pairs(10);
        var specs = ModelSpec.ParseAll([$"ed={Path.Combine(_dir, "runs", "ed")}", dec]);
        Assert.Equal(["ed", "dec"], specs.Select(s => s.Name));
        var options = new ComparisonOptions
        {
            Evaluation = new EvaluationOptions { Examples = 6, MaxNewTokens = 3, Samples = 6, BatchSize = 4 },
            Speed = new DecodingSpeedOptions { Prompts = 2 },
        };
        var r = ModelComparison.Run(specs, pairs, options);
        Assert.Equal(6, r.Examples);
        Assert.Equal(2, r.Models.Count);
        Assert.Equal(ed, r.Models[0].Checkpoint);
        Assert.Equal("EncoderDecoder", r.Models[0].Family);
        Assert.Equal("DecoderOnly", r.Models[1].Family);
        Assert.All(r.Models, m =>
        {
            Assert.Equal(6, m.Result.Examples);
            Assert.Equal(pairs.Take(6).Select(p => p.Target), m.Result.Samples.Select(s => s.Reference));
            Assert.True(m.Speed!.DecodeTokensPerSecond > 0);
            Assert.Equal(2, m.Speed.Prompts);
        });
        Assert.False(r.SharedTokenizer);
        var baselines = Evaluation.Baselines(pairs.Take(6).ToList());
        Assert.Equal(baselines.Select(b => b.Name), r.Baselines.Select(b => b.Name));
        Assert.Equal(baselines[0].Metrics["rouge_l"], r.Baselines[0].Metrics["rouge_l"]);

        // Each model on its own gives the same figures: nothing of one model leaks into the other.
        using (var model = Checkpoint.Load(dec))
        {
            var alone = Evaluation.Run(model, OtherTokenizer.Value, pairs, options.Evaluation);
            Assert.Equal(alone.Loss, r.Models[1].Result.Loss, 9);
            Assert.Equal(alone.Samples.Select(s => s.Output), r.Models[1].Result.Samples.Select(s => s.Output));
        }

        var table = ModelComparison.Table(r);
        Assert.Equal(2, table.ModelRows);
        Assert.Equal(4, table.Rows.Count);
        Assert.Equal(["ed", "dec", $"{baselines[0].Name} baseline", "majority baseline"], table.Rows.Select(row => row[0]));
        Assert.All(table.Rows, row => Assert.Equal(table.Columns.Count, row.Count));
        Assert.Contains("1st token ms", table.Columns);
        var md = table.ToMarkdown().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(6, md.Length);
        Assert.StartsWith("| model | params | loss | ppl | ROUGE-L |", md[0]);
        Assert.Equal("|---" + string.Concat(Enumerable.Repeat("|---:", table.Columns.Count - 1)) + "|", md[1]);
        Assert.StartsWith("| ed | ", md[2]);
        Assert.StartsWith("| dec | ", md[3]);
    }

    [Fact]
    public void ModelsSharingATokenizerAreMarkedComparableByLoss()
    {
        var a = Save("tiny-encdec", TestData.Tokenizer, "a");
        var b = Save("tiny-decoder", TestData.Tokenizer, "b");
        var r = ModelComparison.Run(ModelSpec.ParseAll([a, b]), Pairs(3), new ComparisonOptions { Evaluation = new EvaluationOptions { LossOnly = true } });
        Assert.True(r.SharedTokenizer);
        var table = ModelComparison.Table(r);
        // Loss only: no generation metrics, so no baseline rows and no metric columns.
        Assert.Equal(["model", "params", "loss", "ppl"], table.Columns);
        Assert.Equal(2, table.Rows.Count);
    }

    [Fact]
    public void AMissingModelIsNamedBeforeAnyIsLoaded()
    {
        var good = Save("tiny-encdec", TestData.Tokenizer, "good");
        var missing = Path.Combine(_dir, "no-such-run");
        var e = Assert.ThrowsAny<IOException>(() => ModelComparison.Run(ModelSpec.ParseAll([good, $"teacher={missing}"]), Pairs(2)));
        Assert.Contains("teacher", e.Message);
        Assert.Contains(missing, e.Message);
        var unnamed = Assert.ThrowsAny<IOException>(() => ModelComparison.Resolve(ModelSpec.ParseAll([missing])));
        Assert.Contains(missing, unnamed.Message);
        var empty = Directory.CreateDirectory(Path.Combine(_dir, "empty-run")).FullName;
        var notCheckpoint = Assert.ThrowsAny<IOException>(() => ModelComparison.Resolve(ModelSpec.ParseAll([$"student={empty}"])));
        Assert.Contains("student", notCheckpoint.Message);
        Assert.Throws<ArgumentException>(() => ModelComparison.Resolve(ModelSpec.ParseAll([$"x={good}", $"x={good}"])));
        Assert.Throws<ArgumentException>(() => ModelComparison.Resolve([]));
    }

    [Fact]
    public void ModelSpecsTakeANameOrOneFromThePath()
    {
        Assert.Equal(new ModelSpec("teacher", "runs/t") { Named = true }, ModelSpec.Parse("teacher=runs/t"));
        Assert.Equal(new ModelSpec("t", "runs/t/"), ModelSpec.Parse("runs/t/"));
        Assert.Equal(new ModelSpec("t/checkpoint-400", "runs/t/checkpoint-400"), ModelSpec.Parse("runs/t/checkpoint-400"));
        // A '=' after a directory separator belongs to the path.
        Assert.Equal(new ModelSpec("b=c", "runs/a/b=c"), ModelSpec.Parse("runs/a/b=c"));
        Assert.Throws<ArgumentException>(() => ModelSpec.Parse("teacher="));
        // Unnamed models whose short names collide are named by their paths.
        var specs = ModelSpec.ParseAll(["a/run/checkpoint-1", "b/run/checkpoint-1", "c"]);
        Assert.Equal(["a/run/checkpoint-1", "b/run/checkpoint-1", "c"], specs.Select(s => s.Name));
    }

    [Fact]
    public void LossCurvesComeFromTheRunsMetricsLog()
    {
        var run = Path.Combine(_dir, "run");
        var checkpoint = Save("tiny-encdec", TestData.Tokenizer, "run/checkpoint-3");
        File.WriteAllText(Path.Combine(run, LossCurves.MetricsFile), string.Join('\n',
            """{"step":1,"loss":6.5,"lr":0.001,"grad_norm":1.0,"tokens":100,"tokens_per_second":10,"seconds":1}""",
            """{"step":2,"loss":6.0,"lr":0.001,"grad_norm":1.0,"tokens":210,"tokens_per_second":10,"seconds":2}""",
            """{"step":2,"eval_loss":6.2,"perplexity":492.7}""",
            """{"step":3,"loss":"NaN","tokens":300}""",
            """{"step":3,"eval_loss":5.9,"perpl""") + "\n");
        Assert.Equal(run, LossCurves.RunDirectory(checkpoint));
        Assert.Equal(run, LossCurves.RunDirectory(run));
        Assert.Null(LossCurves.FindMetrics(Path.Combine(_dir, "elsewhere")));
        var curve = LossCurve.Read("r", LossCurves.FindMetrics(checkpoint)!);
        // The NaN step and the line cut short are left out; the evaluation sits at its step's tokens.
        Assert.Equal([new LossPoint(1, 100, 6.5), new LossPoint(2, 210, 6.0)], curve.Train);
        Assert.Equal([new LossPoint(2, 210, 6.2)], curve.Validation);
        Assert.True(curve.HasTokens);

        var png = Path.Combine(_dir, "plots", "loss.png");
        var withoutTokens = new LossCurve("s", [new LossPoint(1, null, 5.0), new LossPoint(2, null, 4.0)], []);
        LossCurves.WritePlot(png, [curve, withoutTokens]);
        var bytes = File.ReadAllBytes(png);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        Assert.Equal(["loss.png"], Directory.GetFiles(Path.GetDirectoryName(png)!).Select(Path.GetFileName));
        Assert.Throws<ArgumentException>(() => LossCurves.WritePlot(png, []));

        var (curves, notes) = ModelComparison.ReadCurves([new ModelSpec("r", checkpoint), new ModelSpec("lost", Path.Combine(_dir, "elsewhere"))]);
        Assert.Equal(["r"], curves.Select(c => c.Name));
        Assert.Contains(notes, n => n.StartsWith("lost: no metrics.jsonl", StringComparison.Ordinal));
    }
}

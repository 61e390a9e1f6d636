using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore eval --embeddings</c> end to end on untrained tiny encoder-only and decoder-only checkpoints:
/// the retrieval figures against ranks re-computed here in double precision from the library's vectors,
/// the duplicate-target rule, the baselines, and the errors of its options.
/// </summary>
public sealed class EmbeddingEvalTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-embedding-eval-").FullName;
    readonly string _encoder, _decoder, _data;

    // Six pairs; two share the target "font tools", so retrieval keeps the other four.
    static readonly (string Source, string Target, string Section)[] s_rows =
    [
        ("a library that parses images and fonts", "image parser", "libs"),
        ("tools that convert fonts between formats", "font tools", "fonts"),
        ("more tools that convert fonts", "font tools", "fonts"),
        ("a game of chess for the terminal", "chess game", "games"),
        ("documentation of the image parser", "parser docs", "doc"),
        ("a puzzle game with falling blocks", "block puzzle", "games"),
    ];

    public EmbeddingEvalTests()
    {
        var tokenizer = BundledData.TrainTokenizer(s_rows.Select(r => new TextPair(r.Source, r.Target)).ToList(), vocabSize: 300, sentinels: 0);
        _encoder = TestCheckpoints.Save(Path.Combine(_dir, "encoder"), "tiny-encoder", tokenizer);
        _decoder = TestCheckpoints.Save(Path.Combine(_dir, "decoder"), "tiny-decoder", tokenizer);
        _data = Path.Combine(_dir, "pairs.jsonl");
        File.WriteAllLines(_data, s_rows.Select(r => new JsonObject { ["source"] = r.Source, ["target"] = r.Target, ["section"] = r.Section }.ToJsonString()));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Rank of target i for source i by cosine, in double, ties against the answer.
    static int[] Ranks(string dir, PoolingMode pooling, IReadOnlyList<(string Source, string Target, string Section)> rows)
    {
        using var m = Checkpoint.Load(dir);
        var embedder = new Embedder(m, TokenizerLoader.FromDirectory(dir), new EmbeddingOptions { Pooling = pooling, Normalize = false });
        var q = embedder.Embed(rows.Select(r => r.Source).ToList()).Vectors;
        var c = embedder.Embed(rows.Select(r => r.Target).ToList()).Vectors;
        static double Cos(float[] a, float[] b) =>
            a.Zip(b).Sum(p => (double)p.First * p.Second) / Math.Sqrt(a.Sum(x => (double)x * x) * b.Sum(x => (double)x * x));
        return q.Select((v, i) => 1 + c.Where((_, j) => j != i && Cos(v, c[j]) >= Cos(v, c[i]) - 1e-9).Count()).ToArray();
    }

    [Fact]
    public void EachModelAndPoolingGetsARowScoredOnThePairsWithDistinctTargets()
    {
        var r = CliRunner.Run("eval", "--embeddings", "-m", $"enc={_encoder}", "-m", $"dec={_decoder}", "--data", _data, "--pooling", "mean,last",
            "--probe-field", "section", "--probe-data", _data, "--json", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonNode.Parse(r.Stdout)!;
        var models = json["models"]!.AsArray();
        Assert.Equal(["enc mean", "enc last", "dec mean", "dec last"], models.Select(m => $"{m!["name"]} {m["pooling"]}"));
        var kept = s_rows.Where(x => x.Target != "font tools").ToList();
        foreach (var m in models)
        {
            var result = m!["result"]!;
            var retrieval = result["retrieval"]!;
            Assert.Equal(4, (int)retrieval["queries"]!);
            var ranks = Ranks(m["name"]!.ToString() == "enc" ? _encoder : _decoder, Pooling.Parse(m["pooling"]!.ToString(), "pooling"), kept);
            Assert.Equal(ranks.Count(x => x == 1) / 4.0, (double)retrieval["recall_at1"]!, 9);
            Assert.Equal(ranks.Average(x => 1.0 / x), (double)retrieval["mean_reciprocal_rank"]!, 9);
            Assert.Equal(0.25, (double)result["random"]!["recall_at1"]!, 12);
            // The probe is fitted on all six rows and scored on all six; "games" and "fonts" tie at two, "fonts" first.
            Assert.Equal(6, (int)result["probe_test_examples"]!);
            Assert.Equal("fonts", result["majority_label"]!.ToString());
            Assert.Equal(2 / 6.0, (double)result["majority_accuracy"]!, 12);
            Assert.InRange((double)result["probe_accuracy"]!, 0, 1);
        }
    }

    [Theory]
    [InlineData("--probe-field section", "--probe-field needs --probe-data (the examples the probe is fitted on)")]
    [InlineData("--pooling mean,avg", "--pooling 'avg' is not one of mean, cls, max, last")]
    [InlineData("--probe-examples -1 --probe-field section --probe-data X", "--probe-examples cannot be negative, got -1")]
    [InlineData("--max-length 0", "--max-length must be at least 1, got 0")]
    public void BadOptionsAreRefusedByName(string options, string expected)
    {
        var r = CliRunner.Run(["eval", "--embeddings", "-m", _encoder, "--data", _data, .. options.Replace("X", _data).Split(' ')]);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"encore: {expected}", r.Stderr.Trim());
    }

    [Theory]
    [InlineData("--objective causal-lm --mlm-probability 0.3", "--mlm-probability applies to --objective mlm only")]
    [InlineData("--objective mlm --mlm-probability 0", "--mlm-probability must be in (0, 1], got 0")]
    [InlineData("--objective mlm --mlm-probability 1.5", "--mlm-probability must be in (0, 1], got 1.5")]
    public void TheMaskingRateIsCheckedByName(string options, string expected)
    {
        var r = CliRunner.Run(["train", "-m", _encoder, "--data", _data, "--steps", "1", "--out", Path.Combine(_dir, "run"), .. options.Split(' ')]);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"encore: {expected}", r.Stderr.Trim());
    }
}

using System.Diagnostics;
using System.Text.Json;
using Encore.Bench;
using Encore.Models;

namespace Encore.Cli.Tests;

/// <summary>
/// The quickstart and every <c>encore bench</c> suite run end to end, tiny, with <c>--json</c> and without peers:
/// the process succeeds and prints one JSON object with the suite's figures. These check that the
/// suites work, not how fast (benchmarks are programs, never timed tests). One class, so the suites
/// run one after another and do not compete for the cores.
/// </summary>
public sealed class SmokeTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-bench-smoke-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static JsonElement Run(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "encore.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--json");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(300_000), $"encore {string.Join(' ', args)} did not finish");
        Assert.True(p.ExitCode == 0, $"encore {string.Join(' ', args)} failed: {stderr.Result}");
        return JsonDocument.Parse(stdout.Result).RootElement;
    }

    /// <summary>Runs encore expecting it to fail; returns what it printed to stderr.</summary>
    static string RunFailing(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "encore.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(300_000), $"encore {string.Join(' ', args)} did not finish");
        Assert.True(p.ExitCode != 0, $"encore {string.Join(' ', args)} succeeded: {stdout.Result}");
        return stderr.Result + stdout.Result;
    }

    static void HasMachine(JsonElement r) => Assert.True(r.GetProperty("machine").GetProperty("logical_cores").GetInt32() > 0);

    [Fact]
    public void Kernels()
    {
        var r = Run("bench", "kernels", "--quick", "--no-peers", "--runs", "1", "--threads", "1");
        HasMachine(r);
        Assert.NotEqual(0, r.GetProperty("gemm").GetArrayLength());
        Assert.All(r.GetProperty("gemm").EnumerateArray(), g => Assert.True(g.GetProperty("gflops").GetDouble() > 0));
    }

    [Fact]
    public void Train()
    {
        var r = Run("bench", "train", "--preset", "tiny-encdec", "--batch", "2", "--source-length", "8", "--target-length", "8",
            "--runs", "1", "--no-peers", "--threads", "1");
        Assert.Equal("tiny-encdec", r.GetProperty("preset").GetString());
        Assert.True(r.GetProperty("encore").GetProperty("tokens_per_second").GetDouble() > 0);
    }

    [Fact]
    public void Forward()
    {
        var r = Run("bench", "forward", "--preset", "tiny-encdec", "--preset", "tiny-decoder", "--length", "16", "--runs", "1", "--threads", "1");
        Assert.Equal(2, r.GetProperty("models").GetArrayLength());
        Assert.All(r.GetProperty("models").EnumerateArray(), m => Assert.True(m.GetProperty("tokens_per_second").GetDouble() > 0));
    }

    [Fact]
    public void Generate()
    {
        var r = Run("bench", "generate", "--preset", "tiny-encdec", "--preset", "tiny-decoder", "--batch", "1", "--batch", "2",
            "--input-length", "8", "--new-tokens", "4", "--weights", "f32", "--runs", "1", "--threads", "1");
        Assert.Equal(4, r.GetProperty("figures").GetArrayLength());
        Assert.All(r.GetProperty("figures").EnumerateArray(), f => Assert.True(f.GetProperty("decode_tokens_per_second").GetDouble() > 0));
    }

    [Fact]
    public void GenerateComparesTwoWeightTypesRunByRun()
    {
        var r = Run("bench", "generate", "--preset", "tiny-decoder", "--batch", "1", "--weights", "f32", "--compare-weights", "q8_0",
            "--input-length", "8", "--new-tokens", "5", "--runs", "3", "--threads", "1");
        var figures = r.GetProperty("figures").EnumerateArray().ToArray();
        Assert.Equal(["f32", "q8_0"], figures.Select(f => f.GetProperty("weights").GetString()));
        Assert.Equal(JsonValueKind.Null, figures[0].GetProperty("decode_ratio").ValueKind);
        Assert.True(figures[1].GetProperty("decode_ratio").GetDouble() > 0);
        Assert.All(figures, f => Assert.Equal(5, f.GetProperty("generated_tokens").GetInt32()));
        // Each figure's bytes are its own weight type's: Q8_0 weights take 34 bytes per 32 values against f32's 128.
        Assert.True(figures[1].GetProperty("weight_bytes_per_step").GetInt64() < figures[0].GetProperty("weight_bytes_per_step").GetInt64() / 2);
    }

    [Theory]
    [InlineData("f32", "is --weights itself")]
    [InlineData("i32", "must be f32, bf16, f16, q8_0 or q4_0")]
    public void GenerateRefusesACompareWeightsItCannotTime(string type, string message)
    {
        var r = CliRunner.Run("bench", "generate", "--preset", "tiny-decoder", "--batch", "1", "--weights", "f32", "--compare-weights", type, "--runs", "1", "--json");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        var batch = CliRunner.Run("bench", "generate", "--preset", "tiny-decoder", "--batch", "2", "--weights", "f32", "--compare-weights", "q8_0", "--runs", "1", "--json");
        Assert.Contains("--compare-weights times batch 1", batch.Stderr);
    }

    [Fact]
    public void GenerateMeasuresSpeculativeMethodsBesideGreedyAtBatchOne()
    {
        // The preset as its own draft (the same seed, so the same weights): every draft is accepted.
        var r = Run("bench", "generate", "--preset", "tiny-decoder", "--batch", "1", "--batch", "2", "--prompt-lookup", "--draft-model", "tiny-decoder",
            "--draft-tokens", "3", "--input-length", "8", "--new-tokens", "9", "--weights", "f32", "--runs", "1", "--threads", "1");
        var figures = r.GetProperty("figures").EnumerateArray().ToArray();
        Assert.Equal(["greedy", "prompt lookup", "draft tiny-decoder", "greedy"], figures.Select(f => f.GetProperty("method").GetString()));
        Assert.Equal([1, 1, 1, 2], figures.Select(f => f.GetProperty("batch").GetInt32()));
        Assert.All(figures[..3], f => Assert.Equal(9, f.GetProperty("generated_tokens").GetInt32()));
        Assert.Equal(1.0, figures[0].GetProperty("tokens_per_pass").GetDouble());
        Assert.Equal(JsonValueKind.Null, figures[0].GetProperty("acceptance_rate").ValueKind);
        Assert.Equal(1.0, figures[2].GetProperty("acceptance_rate").GetDouble());
        Assert.Equal(3.0, figures[2].GetProperty("tokens_per_pass").GetDouble());   // 9 tokens: the first token's pass, then rounds of 1 + 3 and 1 + 3
        Assert.Equal(3, r.GetProperty("draft_tokens").GetInt32());
    }

    [Fact]
    public void GenerateMeasuresSuperposedDraftsAgainstSampledRuns()
    {
        var r = Run("bench", "generate", "--preset", "tiny-decoder", "--batch", "1", "--superposed", "2",
            "--input-length", "8", "--new-tokens", "6", "--weights", "f32", "--runs", "1", "--threads", "1");
        var f = Assert.Single(r.GetProperty("superposed").EnumerateArray());
        Assert.Equal(2, f.GetProperty("drafts").GetInt32());
        Assert.Equal(6, f.GetProperty("superposed_passes").GetInt32());   // one pass per step for both drafts
        Assert.Equal(12, f.GetProperty("sampled_passes").GetInt32());     // 2 runs of 6 tokens (random prompts never stop)
        Assert.True(f.GetProperty("superposed_seconds").GetDouble() > 0 && f.GetProperty("sampled_seconds").GetDouble() > 0);
        Assert.True(f.GetProperty("superposed_perplexity").GetDouble() >= 1 && f.GetProperty("sampled_perplexity").GetDouble() >= 1);
    }

    [Fact]
    public void GenerateTimesTextsOfADataFileOnACheckpoint()
    {
        var pairs = Enumerable.Range(0, 6).Select(i => new Encore.Training.Data.TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = Encore.Training.Data.BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        string model = Path.Combine(_dir, "model"), data = Path.Combine(_dir, "pairs.jsonl");
        Directory.CreateDirectory(model);
        using (var m = Encore.Training.Runs.TrainingRun.LoadModel("tiny-encdec", tokenizer))
            Encore.Formats.Checkpoints.Checkpoint.Save(m, model);
        Encore.Training.Runs.TrainingRun.SaveTokenizer(tokenizer, model);
        File.WriteAllLines(data, pairs.Select(p => JsonSerializer.Serialize(new { source = p.Source, target = p.Target })));
        var r = Run("bench", "generate", "--model", model, "--data", data, "--prompts", "4", "--prompt-lookup", "--new-tokens", "6", "--weights", "f32", "--runs", "1", "--threads", "1");
        Assert.True(r.GetProperty("texts").GetBoolean());
        var figures = r.GetProperty("figures").EnumerateArray().ToArray();
        Assert.Equal(["greedy", "prompt lookup"], figures.Select(f => f.GetProperty("method").GetString()));
        Assert.All(figures, f => Assert.Equal(4, f.GetProperty("prompts").GetInt32()));
        Assert.Equal(figures[0].GetProperty("generated_tokens").GetInt32(), figures[1].GetProperty("generated_tokens").GetInt32());
        Assert.Contains("--data needs checkpoints", RunFailing("bench", "generate", "--preset", "tiny-encdec", "--data", data));
    }

    [Fact]
    public void GenerateWithAnInt8KvCacheReadsLessCache()
    {
        string[] args = ["bench", "generate", "--preset", "tiny-encdec", "--preset", "tiny-decoder", "--batch", "1",
            "--input-length", "8", "--new-tokens", "4", "--weights", "f32", "--runs", "1", "--threads", "1"];
        var f32 = Run(args);
        var int8 = Run([.. args, "--kv-dtype", "int8"]);
        Assert.Equal("f32", f32.GetProperty("kv_cache").GetString());
        Assert.Equal("int8", int8.GetProperty("kv_cache").GetString());
        var a = f32.GetProperty("figures").EnumerateArray().Select(f => f.GetProperty("cache_bytes_per_step").GetInt64()).ToArray();
        var b = int8.GetProperty("figures").EnumerateArray().Select(f => f.GetProperty("cache_bytes_per_step").GetInt64()).ToArray();
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++) Assert.True(a[i] >= 1.8 * b[i], $"figure {i}: {a[i]} f32 cache bytes vs {b[i]} int8");
    }

    [Fact]
    public void UnknownKvDTypeIsRefusedNamingTheOption()
    {
        foreach (var args in new[]
        {
            new[] { "bench", "generate", "--kv-dtype", "q4" },
            ["bench", "arch", "--kv-dtype", "q4"],
            ["generate", "--model", "no-such-model", "--prompt", "hi", "--kv-dtype", "q4"],
            ["serve", "--model", "no-such-model", "--kv-dtype", "q4"],
        })
        {
            string output = RunFailing(args);
            Assert.Contains("--kv-dtype", output);
            Assert.Contains("q4", output);
        }
    }

    [Fact]
    public void Arch()
    {
        var r = Run("bench", "arch", "--small", "--lengths", "16", "--runs", "1", "--threads", "1", "--kv-dtype", "int8");
        Assert.NotEqual(0, r.GetProperty("points").GetArrayLength());
        Assert.Contains("|", r.GetProperty("markdown").GetString());
        Assert.Contains("int8 KV cache", r.GetProperty("markdown").GetString());
        // int8 + a 4-byte scale per vector of hd = 64: 68 of every 256 bytes.
        var ed = Presets.Get("mu-25m");
        Assert.Equal(ArchBenchmark.CacheBytes(ed, 16, 64, KvCacheDType.Int8), r.GetProperty("points")[0].GetProperty("cache_bytes").GetInt64());
    }

    [Fact]
    public void Serve()
    {
        var r = Run("bench", "serve", "--preset", "tiny-encdec", "--clients", "2", "--requests", "4", "--single-requests", "2",
            "--max-tokens", "4", "--threads", "1");
        Assert.Equal("tiny-encdec", r.GetProperty("preset").GetString());
        Assert.Equal(JsonValueKind.Object, r.GetProperty("load").ValueKind);
    }

    [Fact]
    public void Peers()
    {
        // tiny-t5 is built from the T5 family's preset.
        var r = Run("bench", "peers", "--model", "tiny-t5", "--input-length", "8", "--new-tokens", "4", "--weights", "f32", "--runs", "1",
            "--threads", "1", "--no-llama-cpp", "--no-torch", "--work-dir", _dir);
        HasMachine(r);
        Assert.NotEqual(0, r.GetProperty("figures").GetArrayLength());
    }

    [Fact]
    public void Quickstart()
    {
        var r = Run("quickstart", "--out", Path.Combine(_dir, "quickstart"), "--steps", "2", "--train-examples", "300", "--eval-examples", "12", "--threads", "1");
        Assert.Equal("section", r.GetProperty("target").GetString());
        Assert.Equal(300, r.GetProperty("train_examples").GetInt32());
        Assert.Equal(2, r.GetProperty("models").GetArrayLength());
        Assert.All(r.GetProperty("models").EnumerateArray(), m =>
        {
            Assert.True(m.GetProperty("decode_tokens_per_second").GetDouble() > 0);
            Assert.True(Directory.Exists(m.GetProperty("checkpoint").GetString()));
        });
    }
}

using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Encore.Cli.Tests;

/// <summary><c>encore serve</c> reads the checkpoint's chat template, or the one --chat-template names, before it listens.</summary>
public sealed class ServeChatTemplateTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-serve-template-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Checkpoint()
    {
        var pairs = Enumerable.Range(0, 6).Select(i => new Encore.Training.Data.TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = Encore.Training.Data.BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        string model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(model);
        using (var m = Encore.Training.Runs.TrainingRun.LoadModel("tiny-encdec", tokenizer))
            Encore.Formats.Checkpoints.Checkpoint.Save(m, model);
        Encore.Training.Runs.TrainingRun.SaveTokenizer(tokenizer, model);
        return model;
    }

    static string RunFailing(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "encore.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"encore {string.Join(' ', args)} did not stop: it should refuse the template before serving");
        }
        Assert.True(p.ExitCode != 0, $"encore {string.Join(' ', args)} succeeded: {stdout.Result}");
        return stderr.Result + stdout.Result;
    }

    [Fact]
    public void AnUnsupportedTemplateStopsTheStartNamingFileLineAndTheOverride()
    {
        string model = Checkpoint();
        string file = Path.Combine(_dir, "bad.jinja");
        File.WriteAllText(file, "{{ bos_token }}\n{% macro turn(m) %}{% endmacro %}");
        string output = RunFailing("serve", "--model", model, "--port", "0", "--chat-template", file);
        Assert.Contains("bad.jinja", output);
        Assert.Contains("line 2, column 4: unknown tag 'macro'", output);

        // The checkpoint's own template is read the same way, and the error says how to serve another.
        string config = Path.Combine(model, "tokenizer_config.json");
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        json["chat_template"] = "{% for m in messages %}{{ m.content | wordwrap }}{% endfor %}";
        File.WriteAllText(config, json.ToJsonString());
        output = RunFailing("serve", "--model", model, "--port", "0");
        Assert.Contains("tokenizer_config.json", output);
        Assert.Contains("unknown filter 'wordwrap'", output);
        Assert.Contains("--chat-template", output);
    }
}

using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Models;

namespace Encore.Cli.Tests;

/// <summary>`generate --src-lang/--tgt-lang` on a tiny random mBART-50 checkpoint with the fixture's tokenizer: the target language is forced first.</summary>
public sealed class MBartGenerateTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-mbart-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // A 2 + 2 layer mBART of width 32 over the fixture tokenizer's 174 ids, saved in the published layout.
    string Checkpoint()
    {
        var dir = Path.Combine(_dir, "mbart50");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Fixtures", "mbart50"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var tokenizer = (MBartTokenizer)TokenizerLoader.FromDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""
            {"model_type": "mbart", "vocab_size": {{tokenizer.VocabSize}}, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2,
             "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
             "max_position_embeddings": 64, "decoder_start_token_id": 2, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
            """);
        var (config, _) = Encore.Formats.Checkpoints.Checkpoint.ReadConfig(dir);
        using var model = LanguageModel.Create(config, seed: 3);
        Encore.Formats.Checkpoints.Checkpoint.Save(model, dir, "mbart");
        return dir;
    }

    static JsonElement Json(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement;
    }

    [Fact]
    public void TheTargetLanguageIsTheFirstTokenAndTheSourceLanguageWrapsThePrompt()
    {
        var dir = Checkpoint();
        var tokenizer = (MBartTokenizer)TokenizerLoader.FromDirectory(dir);
        var g = Json(CliRunner.Run("generate", "-m", dir, "--prompt", "the quick archive", "--tgt-lang", "ro_RO", "--max-new-tokens", "3",
            "--min-new-tokens", "3", "--threads", "1", "--json", "--keep-special-tokens"));
        Assert.Equal(tokenizer.LanguageId("ro_RO"), g.GetProperty("tokens")[0].GetInt32());
        var de = Json(CliRunner.Run("generate", "-m", dir, "--prompt", "the quick archive", "--tgt-lang", "de_DE", "--max-new-tokens", "3",
            "--min-new-tokens", "3", "--threads", "1", "--json"));
        Assert.Equal(tokenizer.LanguageId("de_DE"), de.GetProperty("tokens")[0].GetInt32());

        // Another source language is taken (the wrapping itself is MBartTokenizerTests').
        var zh = Json(CliRunner.Run("generate", "-m", dir, "--prompt", "the quick archive", "--src-lang", "zh_CN", "--max-new-tokens", "2", "--min-new-tokens", "2", "--threads", "1", "--json"));
        Assert.Equal(2, zh.GetProperty("tokens").GetArrayLength());
    }

    [Fact]
    public void BadLanguagesFailWithOneLine()
    {
        var dir = Checkpoint();
        static void Fails(string expected, params string[] args) => CliRunner.AssertOneLineError(CliRunner.Run(args), expected);
        Fails("'xx_XX' is not a language code of this tokenizer; codes: ar_AR", "generate", "-m", dir, "--prompt", "hi", "--tgt-lang", "xx_XX");
        Fails("'en' is not a language code", "generate", "-m", dir, "--prompt", "hi", "--src-lang", "en");
        Fails("give one of --tgt-lang and --forced-bos-token-id", "generate", "-m", dir, "--prompt", "hi", "--tgt-lang", "ro_RO", "--forced-bos-token-id", "5");
    }
}

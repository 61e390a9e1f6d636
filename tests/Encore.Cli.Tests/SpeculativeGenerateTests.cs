using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Cli.Tests;

/// <summary>
/// <c>encore generate</c> with speculative decoding on tiny untrained checkpoints made here: the tokens are
/// the plain greedy ones, <c>--stats</c> and <c>--json</c> report the passes and drafts, and drafts of
/// another family or tokenizer are refused naming both checkpoints.
/// </summary>
public sealed class SpeculativeGenerateTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-speculative-cli-").FullName;
    readonly string _encdec, _decoder, _otherVocab;

    public SpeculativeGenerateTests()
    {
        var pairs = Enumerable.Range(0, 12).Select(i => new TextPair($"package {i} parses images and fonts", $"parser {i}")).ToList();
        var tokenizer = BundledData.TrainTokenizer(pairs, vocabSize: 300, sentinels: 0);
        var other = BundledData.TrainTokenizer(pairs, vocabSize: 280, sentinels: 0);
        _encdec = Save("encdec", "tiny-encdec", tokenizer);
        _decoder = Save("decoder", "tiny-decoder", tokenizer);
        _otherVocab = Save("other", "tiny-encdec", other);
    }

    string Save(string name, string preset, Encore.Formats.Tokenization.TextTokenizer tokenizer) =>
        TestCheckpoints.Save(Path.Combine(_dir, name), preset, tokenizer);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string[] Generate(string model, params string[] extra) =>
        ["generate", "--model", model, "--prompt", "package 3 parses fonts and package 3 parses", "--max-new-tokens", "12", "--min-new-tokens", "12", "--threads", "1", "--json", .. extra];

    static string Tokens(CliRunner.Result r) => JsonDocument.Parse(r.Stdout).RootElement.GetProperty("tokens").ToString();

    [Theory]
    [InlineData("encdec")]
    [InlineData("decoder")]
    public void DraftModelAndPromptLookupGiveThePlainTokensAndReportTheirPasses(string family)
    {
        string model = family == "encdec" ? _encdec : _decoder;
        var plain = CliRunner.Run(Generate(model, "--stats"));
        Assert.True(plain.ExitCode == 0, plain.Stderr);
        Assert.Matches(@"^encore: 12 tokens in [0-9.]+ s \([0-9.]+ tokens/s, model load excluded\)$", plain.Stderr.Trim());
        Assert.False(JsonDocument.Parse(plain.Stdout).RootElement.TryGetProperty("speculative", out _));

        // The model as its own draft: every draft is accepted, 4 drafts + 1 token per pass after the first.
        var draft = CliRunner.Run(Generate(model, "--draft-model", model, "--draft-tokens", "4", "--stats"));
        Assert.True(draft.ExitCode == 0, draft.Stderr);
        Assert.Equal(Tokens(plain), Tokens(draft));
        var s = JsonDocument.Parse(draft.Stdout).RootElement.GetProperty("speculative");
        Assert.Equal(s.GetProperty("drafted").GetInt32(), s.GetProperty("accepted").GetInt32());
        Assert.Equal(1.0, s.GetProperty("acceptance_rate").GetDouble());
        Assert.Equal(4, s.GetProperty("target_passes").GetInt32());   // the first token's, then rounds of 1 + 4, 1 + 4 and 1 + 1 tokens
        Assert.Contains("speculative decoding with a draft model, 4 drafts per pass: 4 passes of the model, 3.00 tokens per pass, 9 of 9 drafted tokens accepted (100.0%)", draft.Stderr);

        var lookup = CliRunner.Run(Generate(model, "--prompt-lookup", "--prompt-lookup-ngram", "2", "--stats"));
        Assert.True(lookup.ExitCode == 0, lookup.Stderr);
        Assert.Equal(Tokens(plain), Tokens(lookup));
        Assert.Contains("speculative decoding with prompt lookup (n-grams up to 2), 4 drafts per pass", lookup.Stderr);
        Assert.True(JsonDocument.Parse(lookup.Stdout).RootElement.TryGetProperty("speculative", out _));

        var streamed = CliRunner.Run(Generate(model, "--draft-model", model, "--stream", "--stats"));
        Assert.True(streamed.ExitCode == 0, streamed.Stderr);
        Assert.Contains("3.00 tokens per pass", streamed.Stderr);
    }

    [Fact]
    public void DraftsOfAnotherFamilyOrTokenizerAreRefusedNamingBoth()
    {
        var family = CliRunner.Run(Generate(_encdec, "--draft-model", _decoder));
        Assert.NotEqual(0, family.ExitCode);
        Assert.Contains($"--draft-model {_decoder} is a decoder-only model and --model {_encdec} is an encoder–decoder", family.Stderr);

        var vocab = CliRunner.Run(Generate(_encdec, "--draft-model", _otherVocab));
        Assert.NotEqual(0, vocab.ExitCode);
        Assert.Contains($"--draft-model {_otherVocab}", vocab.Stderr);
        Assert.Contains($"--model {_encdec}", vocab.Stderr);
        Assert.Contains("tokenizer", vocab.Stderr);

        var both = CliRunner.Run(Generate(_encdec, "--draft-model", _encdec, "--prompt-lookup"));
        Assert.NotEqual(0, both.ExitCode);
        Assert.Contains("one of --draft-model and --prompt-lookup", both.Stderr);

        var beams = CliRunner.Run(Generate(_encdec, "--prompt-lookup", "--num-beams", "2"));
        Assert.NotEqual(0, beams.ExitCode);
        Assert.Contains("beam search", beams.Stderr);

        var unused = CliRunner.Run(Generate(_encdec, "--draft-tokens", "6"));
        Assert.True(unused.ExitCode == 0, unused.Stderr);
        Assert.Equal("encore: --draft-tokens has no effect without --draft-model or --prompt-lookup", unused.Stderr.Trim());
    }
}

using Encore.Formats;
using Encore.Generation;

namespace Encore.Generation.Tests;

/// <summary>A checkpoint's decoding defaults: generation_config.json (or config.json's generation fields) into <see cref="GenerationOptions"/>.</summary>
public sealed class GenerationConfigFileTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-generation-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    GenerationConfigDefaults Read(string json, bool encoderDecoder = true, string file = GenerationConfigFile.FileName)
    {
        File.WriteAllText(Path.Combine(_dir, file), json);
        return GenerationConfigFile.Read(_dir, encoderDecoder);
    }

    [Fact]
    public void ASummarizersBeamSettingsAreTakenWithLengthsCountingTheDecoderStart()
    {
        // facebook/bart-large-cnn's generation_config.json.
        var r = Read("""
            {"bos_token_id": 0, "decoder_start_token_id": 2, "early_stopping": true, "eos_token_id": 2, "forced_bos_token_id": 0,
             "forced_eos_token_id": 2, "length_penalty": 2.0, "max_length": 142, "min_length": 56, "no_repeat_ngram_size": 3,
             "num_beams": 4, "pad_token_id": 1, "transformers_version": "4.27.0.dev0"}
            """);
        var o = r.Options;
        Assert.Equal(Path.Combine(_dir, GenerationConfigFile.FileName), r.Source);
        Assert.Equal(4, o.NumBeams);
        Assert.Equal(2f, o.LengthPenalty);
        Assert.True(o.EarlyStopping);
        Assert.Equal(141, o.MaxNewTokens);
        Assert.Equal(55, o.MinNewTokens);
        Assert.Equal(3, o.NoRepeatNgramSize);
        Assert.Equal(0, o.ForcedBosTokenId);
        Assert.Equal(2, o.ForcedEosTokenId);
        Assert.Equal([2], o.EosTokenIds!);
        Assert.Equal(2, o.DecoderStartTokenId);
        Assert.Equal(["decoder_start_token_id=2", "early_stopping=true", "eos_token_id=2", "forced_bos_token_id=0", "forced_eos_token_id=2",
            "length_penalty=2.0", "max_length=142", "min_length=56", "no_repeat_ngram_size=3", "num_beams=4"], r.Applied);
        Assert.Empty(r.Ignored);
        // What the file does not set keeps the library's default.
        Assert.False(o.DoSample);
        Assert.Equal(new GenerationOptions().TopP, o.TopP);
    }

    [Fact]
    public void ADecoderOnlyModelTakesItsSamplingAndEosListButNotAPromptCountingMaxLength()
    {
        // meta-llama/Llama-3.1-8B-Instruct's generation_config.json.
        var r = Read("""{"bos_token_id": 128000, "do_sample": true, "eos_token_id": [128001, 128008, 128009], "temperature": 0.6, "top_p": 0.9, "max_length": 4096}""",
            encoderDecoder: false);
        var o = r.Options;
        Assert.True(o.DoSample);
        Assert.Equal(0.6f, o.Temperature);
        Assert.Equal(0.9f, o.TopP);
        Assert.Equal([128001, 128008, 128009], o.EosTokenIds!);
        Assert.Equal(new GenerationOptions().MaxNewTokens, o.MaxNewTokens);
        Assert.Equal(["max_length (it counts a decoder-only model's prompt)"], r.Ignored);
        // max_new_tokens is taken in both families and wins over max_length.
        r = Read("""{"max_new_tokens": 20, "max_length": 4096, "min_new_tokens": 2}""", encoderDecoder: false);
        Assert.Equal(20, r.Options.MaxNewTokens);
        Assert.Equal(2, r.Options.MinNewTokens);
        Assert.Equal(["max_length (max_new_tokens is set)"], r.Ignored);
    }

    [Fact]
    public void ConfigJsonStandsInWithoutItsModelIds()
    {
        // Helsinki-NLP/opus-mt-*: the generation fields live in config.json; its eos and decoder-start ids are the model's own.
        var r = Read("""{"model_type": "marian", "num_beams": 6, "max_length": 512, "bad_words_ids": [[58100], [5, 6]], "eos_token_id": 0, "decoder_start_token_id": 58100}""",
            file: "config.json");
        Assert.Equal(Path.Combine(_dir, "config.json"), r.Source);
        Assert.Equal(6, r.Options.NumBeams);
        Assert.Equal(511, r.Options.MaxNewTokens);
        Assert.Equal([58100], r.Options.BadWordsIds);
        Assert.Null(r.Options.EosTokenIds);
        Assert.Null(r.Options.DecoderStartTokenId);
        Assert.Equal(["bad_words_ids: 1 sequence(s) of several tokens (single tokens are banned)"], r.Ignored);
        // A generation_config.json beside it is read instead.
        r = Read("""{"num_beams": 2}""");
        Assert.Equal(2, r.Options.NumBeams);
    }

    [Fact]
    public void ADirectoryWithNeitherFileGivesTheLibrarysDefaults()
    {
        var r = GenerationConfigFile.Read(_dir, encoderDecoder: true);
        Assert.Null(r.Source);
        Assert.Equal(new GenerationOptions().MaxNewTokens, r.Options.MaxNewTokens);
        Assert.Empty(r.Applied);
    }

    [Theory]
    [InlineData("""{"num_beams": "four"}""", "num_beams must be an integer, got \"four\"")]
    [InlineData("""{"temperature": [1]}""", "temperature must be a number, got [1]")]
    [InlineData("""{"do_sample": 1}""", "do_sample must be true or false, got 1")]
    [InlineData("""{"eos_token_id": [2, -1]}""", "eos_token_id must be non-negative integer ids, got -1")]
    [InlineData("""{"bad_words_ids": 5}""", "bad_words_ids must be a list of id lists, got 5")]
    [InlineData("""{"num_beams": 0}""", "num_beams")]
    [InlineData("""[1, 2]""", "expected a JSON object")]
    [InlineData("""{"num_beams": 4""", "not valid JSON")]
    public void ABadFileIsRefusedNamingItAndTheField(string json, string expected)
    {
        var e = Assert.Throws<CheckpointFormatException>(() => Read(json));
        Assert.StartsWith(Path.Combine(_dir, GenerationConfigFile.FileName) + ": ", e.Message);
        Assert.Contains(expected, e.Message);
    }
}

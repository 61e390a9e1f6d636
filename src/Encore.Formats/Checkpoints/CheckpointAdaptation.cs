using Encore.Formats.Tokenization;
using Encore.Models;

namespace Encore.Formats.Checkpoints;

/// <summary>What <see cref="CheckpointAdaptation.Write"/> wrote.</summary>
/// <param name="OutputDirectory">The encoder–decoder checkpoint written.</param>
/// <param name="Source">The decoder-only checkpoint read for the encoder (and the decoder, balanced).</param>
/// <param name="DecoderSource">The decoder-only checkpoint read for the decoder (unbalanced), or null.</param>
/// <param name="Report">Where each parameter came from.</param>
/// <param name="Parameters">Parameter values of the encoder–decoder.</param>
/// <param name="CopiedFiles">Tokenizer files copied from <paramref name="Source"/>.</param>
public sealed record CheckpointAdaptationResult(string OutputDirectory, string Source, string? DecoderSource, AdaptationReport Report, long Parameters, IReadOnlyList<string> CopiedFiles);

/// <summary>
/// <c>encore adapt</c>'s library half: reads decoder-only checkpoints (Encore's own, <c>llama</c>, <c>qwen2</c>;
/// a training run folder stands for its newest checkpoint), builds the encoder–decoder of
/// <see cref="ModelAdaptation"/> and writes it as an Encore checkpoint (config.json, model.safetensors in
/// F32, the source's tokenizer files) that loads, trains and generates like any other.
/// </summary>
public static class CheckpointAdaptation
{
    /// <summary>The tokenizer files a checkpoint may carry, copied as they are.</summary>
    public static IReadOnlyList<string> TokenizerFiles { get; } =
    [
        TokenizerLoader.TokenizerJson, TokenizerLoader.TokenizerConfigJson, TokenizerLoader.SpecialTokensMapJson,
        TokenizerLoader.AddedTokensJson, TokenizerLoader.SpieceModel, TokenizerLoader.TokenizerModel,
        TokenizerLoader.VocabJson, TokenizerLoader.MergesTxt, TokenizerLoader.VocabTxt,
    ];

    /// <summary>
    /// Adapts the decoder-only checkpoint <paramref name="source"/> (with <paramref name="decoderSource"/>'s
    /// blocks as the decoder when given) into <paramref name="outputDirectory"/>, which must not exist or be
    /// empty. Everything that can be refused is refused before any weight is read: a missing directory, a
    /// source that is not decoder-only, layer counts, a decoder source of another width, vocabulary, block
    /// layout or tokenizer — each error names the config.json or directory at fault. The directory appears
    /// whole or not at all: it is written under a temporary name beside it, loaded back as a check, then renamed.
    /// </summary>
    public static CheckpointAdaptationResult Write(string source, string outputDirectory, string? decoderSource = null, AdaptationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(outputDirectory);
        options ??= new AdaptationOptions();
        string src = CheckpointDirectory.Resolve(source);
        string? dec = decoderSource is null ? null : CheckpointDirectory.Resolve(decoderSource);
        var outDir = Path.GetFullPath(outputDirectory);
        foreach (var read in new[] { src, dec })
            if (read != null && SamePath(read, outDir))
                throw new ArgumentException($"{outputDirectory} is the checkpoint being read; write the encoder–decoder elsewhere");
        if (File.Exists(outDir) || (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any()))
            throw new IOException($"{outputDirectory}: already exists and is not an empty directory; choose a new output folder");

        string srcConfig = Path.Combine(src, "config.json"), decConfig = dec is null ? "" : Path.Combine(dec, "config.json");
        var (srcModelConfig, srcArch) = Checkpoint.ReadConfig(src);
        var decModelConfig = dec is null ? null : Checkpoint.ReadConfig(dec).Config;
        var tokenizer = TryTokenizer(src);
        if (dec != null && tokenizer != null && TryTokenizer(dec) is { } decTokenizer && !SameTokenizer(tokenizer, decTokenizer, out var why))
            throw new ArgumentException($"{dec}: its tokenizer differs from {src}'s ({why}); the encoder and decoder of one model read and write the same ids");
        // The decoder starts from the tokenizer's BOS, what the source's blocks saw first. (Not its DecoderStartId:
        // read beside a decoder-only config.json, that is the decoder_start_token_id such a config carries unused.)
        options = options with { DecoderStartTokenId = options.DecoderStartTokenId ?? tokenizer?.BosId };
        string sourceName = $"{srcConfig} (model_type {srcArch.ModelType})";
        // Fails here, before the weights are read, when the configurations do not fit.
        ModelAdaptation.AdaptedConfig(srcModelConfig, decModelConfig, options, sourceName, decConfig);

        var load = new CheckpointLoadOptions { MapWeights = true };
        using var srcModel = Checkpoint.Load(src, load);
        using var decModel = dec is null ? null : Checkpoint.Load(dec, load);
        var (model, report) = ModelAdaptation.Adapt((DecoderOnlyModel)srcModel, (DecoderOnlyModel?)decModel, options, sourceName, decConfig);
        using (model)
        {
            var parent = Path.GetDirectoryName(outDir) ?? ".";
            Directory.CreateDirectory(parent);
            var temp = Path.Combine(parent, $".{Path.GetFileName(outDir)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
            try
            {
                Directory.CreateDirectory(temp);
                Checkpoint.Save(model, temp);
                var copied = new List<string>();
                // The chat template travels with the tokenizer files (it is not one: a folder with it alone has no tokenizer).
                foreach (var name in TokenizerFiles.Append(ChatTemplateFiles.ChatTemplateJinja))
                {
                    var from = Path.Combine(src, name);
                    if (!File.Exists(from)) continue;
                    File.Copy(from, Path.Combine(temp, name));
                    copied.Add(name);
                }
                // Read back what was written, as every later command will.
                using (var check = Checkpoint.Load(temp, load))
                    if (check.Config != model.Config)
                        throw new InvalidOperationException($"{outputDirectory}: the configuration read back differs from the one written");
                if (tokenizer != null) TokenizerLoader.FromDirectory(temp);
                if (Directory.Exists(outDir)) Directory.Delete(outDir);
                Directory.Move(temp, outDir);
                return new CheckpointAdaptationResult(outDir, src, dec, report, model.ParameterCount, copied);
            }
            finally
            {
                if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            }
        }
    }

    static bool SamePath(string a, string b) =>
        string.Equals(Path.GetFullPath(a).TrimEnd(Path.DirectorySeparatorChar), Path.GetFullPath(b).TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal);

    // The checkpoint's tokenizer, or null when it has no tokenizer files (a malformed one still fails, naming its file).
    static TextTokenizer? TryTokenizer(string dir)
    {
        if (!TokenizerFiles.Any(f => File.Exists(Path.Combine(dir, f)))) return null;
        try
        {
            return TokenizerLoader.FromDirectory(dir);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    static bool SameTokenizer(TextTokenizer a, TextTokenizer b, out string why)
    {
        why = "";
        if (a.VocabSize != b.VocabSize) { why = $"vocabularies of {b.VocabSize} and {a.VocabSize} ids"; return false; }
        if (a.EosId != b.EosId || a.PadId != b.PadId || a.BosId != b.BosId) { why = "other special token ids"; return false; }
        const string probe = "The quick brown fox jumps over the lazy dog: 42 naïve cafés, 東京, 🙂.";
        if (!a.Encode(probe, addSpecialTokens: false).SequenceEqual(b.Encode(probe, addSpecialTokens: false))) { why = "the same text encodes to other ids"; return false; }
        return true;
    }
}

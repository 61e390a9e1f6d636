// Sentence embeddings from an encoder: the encoder-only model (BERT, a sentence-transformers encoder)
// or the encoder of an encoder–decoder (T5, Mu; CodeT5+'s encoder-only mode), with no decoder step; or
// from the final hidden states of a decoder-only model (SGPT, E5-Mistral).
// Inputs are tokenized as the model reads them ([CLS] … [SEP] for BERT; the text's ids then EOS for an
// encoder–decoder, BOS then the text's ids for a decoder-only model, as Generator.EncodePrompt and the
// training objectives build them), sorted by length and encoded in right-padded batches whose padding
// is masked from attention and from pooling, so every vector equals the one its input gets alone.
using Encore.Formats.Tokenization;
using Encore.Models;

namespace Encore.Generation;

/// <summary>
/// One input as the encoder reads it: its ids (special tokens included), and how many it had before it
/// was cut to the length limit (<see cref="Tokens"/> &gt; Ids.Length when <see cref="Truncated"/>).
/// </summary>
public readonly record struct EmbeddingInput(int[] Ids, int Tokens)
{
    /// <summary>True when the input was cut to the length limit.</summary>
    public bool Truncated => Tokens > Ids.Length;
}

/// <summary>An input the embedder refuses (too long, empty, an id outside the vocabulary), with its position in the call.</summary>
public sealed class EmbeddingInputException(int index, string message, Exception? inner = null) : ArgumentException($"input {index}: {message}", inner)
{
    /// <summary>The input's position in the list given (0-based).</summary>
    public int Index { get; } = index;

    /// <summary>What is wrong with it, without the position.</summary>
    public string Reason { get; } = message;
}

/// <summary>The vectors of a batch of inputs, in input order, and what was read to make them.</summary>
public sealed record EmbeddingBatch(float[][] Vectors, long Tokens, int TruncatedInputs);

/// <summary>Embeds texts (or token ids) with an encoder-only, encoder–decoder or decoder-only model.</summary>
public sealed class Embedder
{
    /// <summary>An embedder for <paramref name="model"/>; without a tokenizer only the id methods work.</summary>
    public Embedder(LanguageModel model, TextTokenizer? tokenizer = null, EmbeddingOptions? defaultOptions = null)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        if (model is not (EncoderOnlyModel or EncoderDecoderModel or DecoderOnlyModel))
            throw new ArgumentException($"{model.GetType().Name} gives no hidden states to embed with");
        Tokenizer = tokenizer;
        if (tokenizer != null && tokenizer.VocabSize > model.Config.VocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens but the model only {model.Config.VocabSize}");
        DefaultOptions = (defaultOptions ?? new EmbeddingOptions()).Validate();
        if (DefaultOptions.Dimensions > Dimensions) throw new ArgumentException($"dimensions {DefaultOptions.Dimensions} exceed the model's {Dimensions}");
    }

    /// <summary>The model.</summary>
    public LanguageModel Model { get; }

    /// <summary>The tokenizer, or null.</summary>
    public TextTokenizer? Tokenizer { get; }

    /// <summary>Options used where a call gives none (the checkpoint's sentence-transformers settings, when it has them).</summary>
    public EmbeddingOptions DefaultOptions { get; }

    /// <summary>D (an encoder–decoder's encoder width), the length of a vector before any <see cref="EmbeddingOptions.Dimensions"/> cut.</summary>
    public int Dimensions => Model.Config.Family == ModelFamily.EncoderDecoder ? Model.Config.EncoderDModel : Model.Config.DModel;

    /// <summary>Most tokens one input may have under <paramref name="options"/>: its MaxLength capped by the model's positions.</summary>
    public int MaxLength(EmbeddingOptions? options = null)
    {
        int limit = Model.Config.MaxPositions;
        return (options ?? DefaultOptions).MaxLength is int m ? Math.Min(m, limit) : limit;
    }

    /// <summary>Ids placed before and after an input's own ids, as the model was trained to read them.</summary>
    public (int[] Prefix, int[] Suffix) SpecialTokens()
    {
        if (Model is EncoderDecoderModel)
            return ([], [Tokenizer?.EosId ?? Model.Config.EosTokenId]);
        if (Model is DecoderOnlyModel)
            return (Tokenizer?.BosId ?? Model.Config.BosTokenId) is int bos and >= 0 ? ([bos], []) : ([], []);
        return Tokenizer?.SpecialTokensAround() ?? ([], []);
    }

    /// <summary>
    /// The ids of <paramref name="text"/> as the encoder reads them, cut to <see cref="MaxLength"/> when
    /// <see cref="EmbeddingOptions.Truncate"/> allows (the special tokens stay); an input too long otherwise throws.
    /// </summary>
    public EmbeddingInput Tokenize(string text, EmbeddingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tok = Tokenizer ?? throw new InvalidOperationException("text inputs need a tokenizer");
        var o = options ?? DefaultOptions;
        return Wrap(tok.Encode(o.LowercaseInput ? text.ToLowerInvariant() : text, addSpecialTokens: false), o);
    }

    /// <summary>
    /// <paramref name="ids"/> (an input's own token ids, without special tokens) wrapped as the encoder reads
    /// them and cut to the length limit as <see cref="Tokenize"/> does. Ids outside the vocabulary throw.
    /// </summary>
    public EmbeddingInput Wrap(ReadOnlySpan<int> ids, EmbeddingOptions? options = null)
    {
        var o = options ?? DefaultOptions;
        foreach (int id in ids)
            if ((uint)id >= (uint)Model.Config.VocabSize) throw new ArgumentException($"token id {id} is outside the vocabulary [0, {Model.Config.VocabSize})");
        var (prefix, suffix) = SpecialTokens();
        int max = MaxLength(o), room = max - prefix.Length - suffix.Length;
        if (room < 0) throw new ArgumentException($"the length limit of {max} tokens leaves no room beside the {prefix.Length + suffix.Length} special tokens");
        int tokens = ids.Length + prefix.Length + suffix.Length;
        if (ids.Length > room)
        {
            if (!o.Truncate) throw new ArgumentException($"the input has {tokens} tokens; this model reads at most {max}");
            ids = ids[..room];
        }
        var result = new int[prefix.Length + ids.Length + suffix.Length];
        prefix.CopyTo(result, 0);
        ids.CopyTo(result.AsSpan(prefix.Length));
        suffix.CopyTo(result, prefix.Length + ids.Length);
        if (result.Length == 0) throw new ArgumentException("the input is empty and the model adds no special tokens to read");
        return new EmbeddingInput(result, tokens);
    }

    /// <summary>Embeds <paramref name="texts"/>; vectors in input order.</summary>
    public EmbeddingBatch Embed(IReadOnlyList<string> texts, EmbeddingOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var o = (options ?? DefaultOptions).Validate();
        var inputs = new EmbeddingInput[texts.Count];
        for (int i = 0; i < inputs.Length; i++)
        {
            try
            {
                inputs[i] = Tokenize(texts[i] ?? throw new ArgumentException("the input is null"), o);
            }
            catch (ArgumentException e)
            {
                throw new EmbeddingInputException(i, e.Message, e);
            }
        }
        var vectors = EmbedIds(inputs.Select(x => x.Ids).ToArray(), o, cancellationToken);
        return new EmbeddingBatch(vectors, inputs.Sum(x => (long)x.Ids.Length), inputs.Count(x => x.Truncated));
    }

    /// <summary>
    /// Embeds sequences given as the encoder reads them (special tokens included; see <see cref="Tokenize"/>
    /// and <see cref="Wrap"/>), each 1 to <see cref="MaxLength"/> ids; vectors in input order.
    /// </summary>
    public float[][] EmbedIds(IReadOnlyList<int[]> sequences, EmbeddingOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        var o = (options ?? DefaultOptions).Validate();
        int d = Dimensions, width = o.Dimensions ?? d, max = Model.Config.MaxPositions, vocab = Model.Config.VocabSize;
        if (width > d) throw new ArgumentException($"dimensions {width} exceed the model's {d}");
        for (int i = 0; i < sequences.Count; i++)
        {
            var s = sequences[i] ?? throw new EmbeddingInputException(i, "the sequence is null");
            if (s.Length == 0 || s.Length > max) throw new EmbeddingInputException(i, $"{s.Length} tokens; the model reads 1 to {max}");
            foreach (int id in s)
                if ((uint)id >= (uint)vocab) throw new EmbeddingInputException(i, $"token id {id} is outside the vocabulary [0, {vocab})");
        }
        var result = new float[sequences.Count][];
        // Longest first, so each batch pads to lengths close to its own.
        var order = Enumerable.Range(0, sequences.Count).OrderByDescending(i => sequences[i].Length).ToArray();
        var pooled = new float[Math.Min(o.BatchSize, Math.Max(1, order.Length)) * d];
        for (int start = 0; start < order.Length; start += o.BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int b = Math.Min(o.BatchSize, order.Length - start);
            int s = sequences[order[start]].Length;
            var ids = new int[b * s];                                                          // (B·S)
            var lengths = new int[b];                                                          // (B)
            for (int r = 0; r < b; r++)
            {
                var seq = sequences[order[start + r]];
                seq.CopyTo(ids, r * s);
                ids.AsSpan(r * s + seq.Length, s - seq.Length).Fill(Model.Config.PadTokenId);
                lengths[r] = seq.Length;
            }
            using (var hidden = Encode(ids, b, lengths))                                       // (B, S, D)
                Pooling.Pool(hidden.Value.AsReadOnlySpan<float>(), b, s, d, lengths, o.Pooling, pooled.AsSpan(0, b * d));
            for (int r = 0; r < b; r++)
            {
                var v = pooled.AsSpan(r * d, width).ToArray();                                 // (width)
                if (o.Normalize) Encore.Models.Pooling.Normalize(v, width);
                result[order[start + r]] = v;
            }
        }
        return result;
    }

    Encore.Autograd.Var Encode(int[] ids, int batch, int[] lengths) => Model switch
    {
        EncoderOnlyModel enc => enc.Forward(ids, batch, lengths),
        EncoderDecoderModel ed => ed.Encode(ids, batch, lengths),
        DecoderOnlyModel dec => dec.Hidden(ids, batch, lengths),
        _ => throw new InvalidOperationException("unreachable: the constructor admits these three families only"),
    };
}

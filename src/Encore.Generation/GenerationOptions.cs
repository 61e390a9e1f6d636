// The options of one generation request, shared by the library, `encore generate` and (later) the
// server. Names and defaults follow Hugging Face's GenerationConfig (generation/configuration_utils.py)
// so a generation_config.json reads across without surprises.
using Encore.Models;

namespace Encore.Generation;

/// <summary>
/// How to generate. Every option has one documented default; <c>new GenerationOptions()</c> is greedy
/// decoding of up to 64 new tokens that stops at the model's EOS.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate after the prompt (HF max_new_tokens). Default 64.</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>EOS is banned until this many tokens are generated (HF min_new_tokens). Default 0.</summary>
    public int MinNewTokens { get; init; }

    /// <summary>Sample from the distribution instead of taking the most likely token (HF do_sample). Default false (greedy, or beam search when <see cref="NumBeams"/> &gt; 1).</summary>
    public bool DoSample { get; init; }

    /// <summary>Softmax temperature when sampling; 0 means greedy. Default 1.</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Keep only the k most likely tokens when sampling; 0 is off. Default 0.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches p (Holtzman et al. 2019); 1 is off. Default 1.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Drop tokens less likely than min_p × the top token's probability (Nguyen et al. 2024); 0 is off. Default 0.</summary>
    public float MinP { get; init; }

    /// <summary>Seed of the sampler; the same seed reproduces the same samples. Default null: a fresh seed per call.</summary>
    public ulong? Seed { get; init; }

    /// <summary>Beams of beam search; 1 is greedy or sampling. Default 1.</summary>
    public int NumBeams { get; init; } = 1;

    /// <summary>Beam scores are sum log p / length^α (HF length_penalty α); &gt; 0 favours longer outputs. Default 1.</summary>
    public float LengthPenalty { get; init; } = 1f;

    /// <summary>Beam search stops as soon as num_beams hypotheses are finished (HF early_stopping=True). Default false (HF's heuristic: stop when no beam can beat the worst finished one).</summary>
    public bool EarlyStopping { get; init; }

    /// <summary>Sequences returned per input: the best beams, or independent samples. Default 1.</summary>
    public int NumReturnSequences { get; init; } = 1;

    /// <summary>CTRL repetition penalty (Keskar et al. 2019) on every token already in the sequence; 1 is off. Default 1.</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>No n-gram of this size occurs twice; 0 is off. Default 0.</summary>
    public int NoRepeatNgramSize { get; init; }

    /// <summary>Tokens that end a sequence. Default null: the model's eos_token_id and the tokenizer's EOS.</summary>
    public IReadOnlyList<int>? EosTokenIds { get; init; }

    /// <summary>Texts that end a sequence when they appear in the decoded output; the output is cut before them. Default none.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Tokens never generated (HF bad_words_ids of single tokens). Default none.</summary>
    public IReadOnlyList<int> BadWordsIds { get; init; } = [];

    /// <summary>Added to the scores of single tokens before sampling (OpenAI logit_bias; HF SequenceBiasLogitsProcessor for one-token sequences); −100 all but bans a token. Default none.</summary>
    public IReadOnlyDictionary<int, float> LogitBias { get; init; } = new Dictionary<int, float>();

    /// <summary>The first generated token is forced to this id (HF forced_bos_token_id, mBART/BART language tokens). Default null.</summary>
    public int? ForcedBosTokenId { get; init; }

    /// <summary>The last token at max_new_tokens is forced to this id (HF forced_eos_token_id). Default null.</summary>
    public int? ForcedEosTokenId { get; init; }

    /// <summary>The id an encoder–decoder's decoder starts from. Default null: the model's decoder_start_token_id.</summary>
    public int? DecoderStartTokenId { get; init; }

    /// <summary>Drop special tokens (EOS, pad, control pieces) from the returned text. Default true.</summary>
    public bool SkipSpecialTokens { get; init; } = true;

    /// <summary>
    /// How the decoder's KV caches (self- and cross-attention) store keys and values: f32, or int8 with
    /// one scale per head and position (about a quarter of the memory, logits within the quantization
    /// error). Not a Hugging Face option. A <see cref="BatchDecoder"/> shares one cache among all its
    /// sequences and takes the setting once, at construction, instead. Default f32.
    /// </summary>
    public KvCacheDType KvCacheDType { get; init; } = KvCacheDType.F32;

    /// <summary>
    /// Speculative decoding with a draft model (Leviathan et al. 2023, arXiv 2211.17192; Chen et al. 2023,
    /// arXiv 2302.01318; HF's assistant_model): a smaller model with the same tokenizer drafts
    /// <see cref="DraftTokens"/> tokens, and this model checks them all in one decoder pass. An
    /// encoder–decoder drafts for an encoder–decoder, a decoder-only model for a decoder-only one. Greedy
    /// output is the plain greedy output and sampling keeps the model's distribution (see docs/decoding.md).
    /// Not with beam search. Default null (off).
    /// </summary>
    public LanguageModel? DraftModel { get; init; }

    /// <summary>
    /// Speculative decoding with prompt-lookup drafts (Saxena 2023, "Prompt Lookup Decoding"; HF's
    /// prompt_lookup_num_tokens): the longest n-gram (at most <see cref="PromptLookupMaxNgram"/> tokens) that
    /// ends the decoder's tokens is looked up in the prompt (an encoder–decoder's source, then its decoder
    /// tokens; a decoder-only model's prompt and output), and the <see cref="DraftTokens"/> tokens that
    /// followed it there are the draft. Needs no second model. Not with beam search or <see cref="DraftModel"/>. Default false.
    /// </summary>
    public bool PromptLookup { get; init; }

    /// <summary>
    /// Tokens drafted per verification pass (speculative decoding only; HF num_assistant_tokens). A pass
    /// checks them and the token before them at once and keeps the accepted prefix plus one token of its own,
    /// so it yields 1 to K + 1 tokens. Default 4: at acceptance rates of 0.6–0.8 a pass then yields 2.3–3.4
    /// tokens, and a fifth draft would add at most 0.08–0.33 more while every rejected draft costs a position
    /// of the verification pass and, with a draft model, one draft step.
    /// </summary>
    public int DraftTokens { get; init; } = 4;

    /// <summary>Longest n-gram prompt lookup matches (it tries n = this, …, 1; HF max_matching_ngram_size). Default 3.</summary>
    public int PromptLookupMaxNgram { get; init; } = 3;

    /// <summary>
    /// Superposed Decoding (Shen et al. 2024, arXiv 2405.18400): k drafts decoded with one decoder pass per step,
    /// the decoder fed the superposition of the drafts' last tokens weighted by their probabilities, each draft
    /// extended by the model's top tokens smoothed with an optional n-gram table (see <see cref="SuperposedOptions"/>
    /// and docs/decoding.md). The result holds all k drafts, best first. Not with beam search, sampling,
    /// speculative decoding or num_return_sequences; does not stream. Default null (off).
    /// </summary>
    public SuperposedOptions? Superposed { get; init; }

    /// <summary>
    /// Lexical-unit decoding (Sun et al. 2024, arXiv 2405.15208) for a model fine-tuned with the
    /// lexical-unit objective: each pass also feeds K − 1 placeholders, whose rows guess the tokens after the
    /// next one; the leading guesses with probability ≥ β are kept without verification, so a pass fixes 1 to
    /// K tokens (see <see cref="LexicalUnitOptions"/> and docs/decoding.md). β = 1 keeps none: plain decoding's
    /// output. Runs as speculative decoding does (one sequence at a time; in the server, while the sequence
    /// is the only one decoding). Not with beam search, a draft model or prompt lookup. Default null (off).
    /// </summary>
    public LexicalUnitOptions? LexicalUnits { get; init; }

    /// <summary>True when this request may fix several tokens per pass: speculative decoding (<see cref="DraftModel"/> or <see cref="PromptLookup"/>) or <see cref="LexicalUnits"/>.</summary>
    public bool Speculates => DraftModel != null || PromptLookup || LexicalUnits != null;

    /// <summary>
    /// Early exit of the encoder and the decoder (MuE, arXiv 2211.11152; see <see cref="EarlyExitOptions"/>): a
    /// stack stops for an example or a token once a layer barely changes its state. The result's
    /// <see cref="GenerationResult.EarlyExit"/> counts the layers run. Not a Hugging Face option. Default null
    /// (off: every layer runs and none is counted).
    /// </summary>
    public EarlyExitOptions? EarlyExit { get; init; }

    /// <summary>True when this request samples (do_sample with a temperature above 0).</summary>
    public bool Samples => DoSample && Temperature > 0;

    /// <summary>Checks every option and returns this; throws <see cref="ArgumentException"/> naming the option.</summary>
    public GenerationOptions Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok) throw new ArgumentException(message);
        }
        Check(MaxNewTokens is >= 1 and <= 1_000_000, $"max_new_tokens must be in [1, 1000000], got {MaxNewTokens}");
        Check(MinNewTokens >= 0 && MinNewTokens <= MaxNewTokens, $"min_new_tokens must be in [0, max_new_tokens={MaxNewTokens}], got {MinNewTokens}");
        Check(float.IsFinite(Temperature) && Temperature >= 0, $"temperature must be a finite number ≥ 0, got {Temperature}");
        Check(TopK >= 0, $"top_k must be ≥ 0 (0 is off), got {TopK}");
        Check(TopP > 0 && TopP <= 1, $"top_p must be in (0, 1], got {TopP}");
        Check(MinP >= 0 && MinP <= 1, $"min_p must be in [0, 1], got {MinP}");
        Check(NumBeams is >= 1 and <= 1024, $"num_beams must be in [1, 1024], got {NumBeams}");
        Check(float.IsFinite(LengthPenalty), $"length_penalty must be finite, got {LengthPenalty}");
        Check(NumReturnSequences is >= 1 and <= 1024, $"num_return_sequences must be in [1, 1024], got {NumReturnSequences}");
        if (NumBeams > 1)
        {
            Check(!DoSample, "beam sampling (num_beams > 1 with do_sample) is not supported; use one or the other");
            Check(NumReturnSequences <= NumBeams, $"num_return_sequences ({NumReturnSequences}) must not exceed num_beams ({NumBeams})");
            Check(StopStrings.Count == 0, "stop strings are not supported with beam search; use stop token ids");
        }
        else
        {
            Check(NumReturnSequences == 1 || Samples, $"num_return_sequences = {NumReturnSequences} needs sampling (do_sample with temperature > 0) or beam search");
        }
        Check(float.IsFinite(RepetitionPenalty) && RepetitionPenalty > 0, $"repetition_penalty must be a finite number > 0, got {RepetitionPenalty}");
        Check(NoRepeatNgramSize >= 0, $"no_repeat_ngram_size must be ≥ 0, got {NoRepeatNgramSize}");
        Check(StopStrings.All(s => !string.IsNullOrEmpty(s)), "stop strings must be non-empty");
        Check(EosTokenIds is null || EosTokenIds.All(i => i >= 0), "eos token ids must be ≥ 0");
        Check(BadWordsIds.All(i => i >= 0), "bad words ids must be ≥ 0");
        Check(LogitBias.All(kv => kv.Key >= 0 && float.IsFinite(kv.Value)), "logit bias needs token ids ≥ 0 and finite biases");
        Check(ForcedBosTokenId is null or >= 0, $"forced_bos_token_id must be ≥ 0, got {ForcedBosTokenId}");
        Check(ForcedEosTokenId is null or >= 0, $"forced_eos_token_id must be ≥ 0, got {ForcedEosTokenId}");
        Check(DecoderStartTokenId is null or >= 0, $"decoder_start_token_id must be ≥ 0, got {DecoderStartTokenId}");
        Check(Enum.IsDefined(KvCacheDType), $"kv cache dtype {(int)KvCacheDType} is not f32 or int8");
        Check(DraftTokens is >= 1 and <= 64, $"draft_tokens must be in [1, 64], got {DraftTokens}");
        Check(PromptLookupMaxNgram is >= 1 and <= 32, $"prompt_lookup_max_ngram must be in [1, 32], got {PromptLookupMaxNgram}");
        EarlyExit?.Validate();
        if (Superposed is { } superposed)
        {
            superposed.Validate();
            Check(NumBeams == 1, "superposed decoding keeps its own k drafts and does not combine with beam search (num_beams > 1)");
            Check(!DoSample, "superposed decoding chooses its drafts deterministically and does not combine with do_sample");
            Check(!Speculates, "superposed decoding does not combine with speculative decoding (a draft model or prompt lookup)");
            Check(NumReturnSequences == 1, $"superposed decoding returns its k drafts: set the number of drafts instead of num_return_sequences ({NumReturnSequences})");
        }
        if (Speculates)
        {
            Check(DraftModel is null || !PromptLookup, "choose one source of drafts: a draft model or prompt lookup, not both");
            Check(LexicalUnits is null || (DraftModel is null && !PromptLookup), "lexical-unit decoding does not combine with speculative decoding (a draft model or prompt lookup)");
            LexicalUnits?.Validate();
            Check(NumBeams == 1, "speculative and lexical-unit decoding extend one sequence at a time and do not combine with beam search (num_beams > 1)");
        }
        return this;
    }

    /// <summary>Checks the token ids against a vocabulary of <paramref name="vocabSize"/>.</summary>
    public void ValidateIds(int vocabSize)
    {
        void Check(int? id, string name)
        {
            if (id is { } i && i >= vocabSize) throw new ArgumentException($"{name} {i} is outside the vocabulary [0, {vocabSize})");
        }
        foreach (var i in EosTokenIds ?? []) Check(i, "eos token id");
        foreach (var i in BadWordsIds) Check(i, "bad words id");
        foreach (var i in LogitBias.Keys) Check(i, "logit bias token id");
        Check(ForcedBosTokenId, "forced_bos_token_id");
        Check(ForcedEosTokenId, "forced_eos_token_id");
        Check(DecoderStartTokenId, "decoder_start_token_id");
        Check(LexicalUnits?.PlaceholderId, "lexical-unit placeholder id");
    }
}

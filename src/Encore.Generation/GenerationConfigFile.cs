// A checkpoint's own decoding defaults, as transformers' generate() applies them: generation_config.json,
// else the generation fields of config.json (GenerationConfig.from_model_config). BART summarizers ship beam
// search with a length penalty and forced BOS/EOS, Marian translators beams and a banned pad, Llama 3 two EOS ids;
// decoding such a model greedily for 64 tokens gives worse output than the user saw in transformers.
using System.Text.Json;
using Encore.Formats;

namespace Encore.Generation;

/// <summary>
/// The decoding defaults a checkpoint directory carries.
/// </summary>
/// <param name="Options">The defaults over <c>new GenerationOptions()</c>: the fields the file sets, the rest the library's.</param>
/// <param name="Source">The file read, or null when the directory has neither file (then <paramref name="Options"/> is the library's default).</param>
/// <param name="Applied">The file's fields taken, as <c>name=value</c>, in the file's order.</param>
/// <param name="Ignored">The file's generation fields not taken, each with the reason.</param>
public sealed record GenerationConfigDefaults(GenerationOptions Options, string? Source, IReadOnlyList<string> Applied, IReadOnlyList<string> Ignored);

/// <summary>Reads a checkpoint's <c>generation_config.json</c> (or config.json's generation fields) into <see cref="GenerationOptions"/>.</summary>
public static class GenerationConfigFile
{
    /// <summary>The file transformers writes beside config.json.</summary>
    public const string FileName = "generation_config.json";

    const long MaxBytes = 1 << 20;

    /// <summary>
    /// The defaults of checkpoint <paramref name="dir"/>. <c>max_length</c> and <c>min_length</c> count the decoder's
    /// start token in an encoder–decoder (transformers' cur_len), so they become max/min new tokens minus one there; a
    /// decoder-only model's count its prompt too, which a fixed number of new tokens cannot express, so they are
    /// ignored there (<c>max_new_tokens</c>/<c>min_new_tokens</c> are taken in both). <c>eos_token_id</c> and
    /// <c>decoder_start_token_id</c> are taken from generation_config.json only: in config.json they are the model's
    /// own ids, which generation uses anyway. Throws
    /// <see cref="CheckpointFormatException"/> naming the file and the field for a value of the wrong type or out of range.
    /// </summary>
    public static GenerationConfigDefaults Read(string dir, bool encoderDecoder)
    {
        ArgumentNullException.ThrowIfNull(dir);
        string own = Path.Combine(dir, FileName), config = Path.Combine(dir, "config.json");
        string? path = File.Exists(own) ? own : File.Exists(config) ? config : null;
        if (path == null) return new GenerationConfigDefaults(new GenerationOptions(), null, [], []);
        if (new FileInfo(path).Length > MaxBytes) throw new CheckpointFormatException($"{path}: larger than {MaxBytes} bytes");
        var bytes = File.ReadAllBytes(path);
        JsonText.Check(bytes, path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: not valid JSON ({e.Message})", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: expected a JSON object");
            var o = new GenerationOptions();
            var applied = new List<string>();
            var ignored = new List<string>();
            // config.json's eos and decoder-start ids are the model's own, which generation already uses (with the
            // tokenizer's EOS); only generation_config.json's replace them.
            bool fromOwnFile = path == own;
            bool hasMaxNew = doc.RootElement.TryGetProperty("max_new_tokens", out var mn) && mn.ValueKind != JsonValueKind.Null;
            bool hasMinNew = doc.RootElement.TryGetProperty("min_new_tokens", out var mm) && mm.ValueKind != JsonValueKind.Null;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                var v = p.Value;
                if (v.ValueKind == JsonValueKind.Null) continue;
                string name = p.Name;
                int Int() => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Bad(path, name, "an integer", v);
                float Float() => v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d) ? (float)d : throw Bad(path, name, "a number", v);
                bool Bool() => v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Bad(path, name, "true or false", v);
                switch (name)
                {
                    case "max_new_tokens": o = o with { MaxNewTokens = Int() }; break;
                    case "min_new_tokens": o = o with { MinNewTokens = Int() }; break;
                    case "max_length" when hasMaxNew: ignored.Add("max_length (max_new_tokens is set)"); continue;
                    case "min_length" when hasMinNew: ignored.Add("min_length (min_new_tokens is set)"); continue;
                    case "max_length" when !encoderDecoder: ignored.Add("max_length (it counts a decoder-only model's prompt)"); continue;
                    case "min_length" when !encoderDecoder: ignored.Add("min_length (it counts a decoder-only model's prompt)"); continue;
                    case "max_length": o = o with { MaxNewTokens = Math.Max(1, Int() - 1) }; break;
                    case "min_length": o = o with { MinNewTokens = Math.Max(0, Int() - 1) }; break;
                    case "do_sample": o = o with { DoSample = Bool() }; break;
                    case "temperature": o = o with { Temperature = Float() }; break;
                    case "top_k": o = o with { TopK = Int() }; break;
                    case "top_p": o = o with { TopP = Float() }; break;
                    case "min_p": o = o with { MinP = Float() }; break;
                    case "num_beams": o = o with { NumBeams = Int() }; break;
                    case "length_penalty": o = o with { LengthPenalty = Float() }; break;
                    // transformers also takes "never" (its default heuristic is false here; "never" stops later still, taken as false).
                    case "early_stopping": o = o with { EarlyStopping = v.ValueKind == JsonValueKind.String && v.GetString() == "never" ? false : Bool() }; break;
                    case "num_return_sequences": o = o with { NumReturnSequences = Int() }; break;
                    case "repetition_penalty": o = o with { RepetitionPenalty = Float() }; break;
                    case "no_repeat_ngram_size": o = o with { NoRepeatNgramSize = Int() }; break;
                    case "eos_token_id" or "decoder_start_token_id" when !fromOwnFile: continue;
                    case "eos_token_id": o = o with { EosTokenIds = Ids(path, name, v) }; break;
                    case "forced_bos_token_id": o = o with { ForcedBosTokenId = Int() }; break;
                    case "forced_eos_token_id" when v.ValueKind == JsonValueKind.Array:
                        var forced = Ids(path, name, v);
                        if (forced.Count == 1) o = o with { ForcedEosTokenId = forced[0] };
                        else { ignored.Add("forced_eos_token_id (several ids; one is forced)"); continue; }
                        break;
                    case "forced_eos_token_id": o = o with { ForcedEosTokenId = Int() }; break;
                    case "decoder_start_token_id" when encoderDecoder: o = o with { DecoderStartTokenId = Int() }; break;
                    case "bad_words_ids":
                        if (v.ValueKind != JsonValueKind.Array) throw Bad(path, name, "a list of id lists", v);
                        var single = new List<int>();
                        int longer = 0;
                        foreach (var seq in v.EnumerateArray())
                        {
                            var ids = Ids(path, name, seq);
                            if (ids.Count == 1) single.Add(ids[0]);
                            else longer++;
                        }
                        o = o with { BadWordsIds = single };
                        if (longer > 0) ignored.Add($"bad_words_ids: {longer} sequence(s) of several tokens (single tokens are banned)");
                        break;
                    default: continue;
                }
                applied.Add($"{name}={v.GetRawText()}");
            }
            try
            {
                o.Validate();
            }
            catch (ArgumentException e)
            {
                throw new CheckpointFormatException($"{path}: {e.Message}", e);
            }
            return new GenerationConfigDefaults(o, path, applied, ignored);
        }
    }

    // An id or a list of ids (eos_token_id may be either).
    static List<int> Ids(string path, string name, JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int one) && one >= 0) return [one];
        if (v.ValueKind != JsonValueKind.Array) throw Bad(path, name, "an id or a list of ids", v);
        var ids = new List<int>();
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id) || id < 0) throw Bad(path, name, "non-negative integer ids", e);
            ids.Add(id);
        }
        return ids;
    }

    static CheckpointFormatException Bad(string path, string name, string expected, JsonElement v)
    {
        string raw = v.GetRawText();
        return new CheckpointFormatException($"{path}: {name} must be {expected}, got {(raw.Length > 40 ? raw[..40] + "…" : raw)}");
    }
}

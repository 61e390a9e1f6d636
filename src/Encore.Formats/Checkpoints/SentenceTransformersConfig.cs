// The sentence-transformers layout (sentence_transformers/SentenceTransformer.py, models/Pooling.py,
// models/Normalize.py): modules.json lists the pipeline, one module per entry, each with its folder:
//   [{"idx": 0, "name": "0", "path": "",            "type": "sentence_transformers.models.Transformer"},
//    {"idx": 1, "name": "1", "path": "1_Pooling",   "type": "sentence_transformers.models.Pooling"},
//    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
// The Transformer's folder holds the Hugging Face checkpoint and sentence_bert_config.json
// ({"max_seq_length": 256, "do_lower_case": false}); the Pooling folder holds config.json with one
// pooling_mode_* flag set; Normalize has no settings. Encore runs exactly this pipeline, with mean, CLS or
// max pooling; any other module (Dense, LayerNorm, a second Transformer …) is refused by name.
using System.Text.Json;
using Encore.Models;
using static Encore.Formats.Tokenization.TokenizerFiles;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// The embedding pipeline a sentence-transformers directory declares: where its encoder checkpoint is,
/// how its hidden states are pooled, whether the result is normalized, and the longest input it reads.
/// </summary>
public sealed record SentenceTransformersConfig
{
    /// <summary>The pipeline file.</summary>
    public const string ModulesJson = "modules.json";
    /// <summary>The Transformer module's settings file.</summary>
    public const string SentenceBertConfigJson = "sentence_bert_config.json";

    /// <summary>Module types Encore runs, by their modules.json names.</summary>
    public const string TransformerType = "sentence_transformers.models.Transformer", PoolingType = "sentence_transformers.models.Pooling",
        NormalizeType = "sentence_transformers.models.Normalize";

    /// <summary>The directory holding the encoder checkpoint (config.json, weights, tokenizer): the Transformer module's folder.</summary>
    public required string TransformerDirectory { get; init; }

    /// <summary>The pooling of the Pooling module.</summary>
    public required PoolingMode Pooling { get; init; }

    /// <summary>True when the pipeline ends with a Normalize module (unit-length embeddings).</summary>
    public bool Normalize { get; init; }

    /// <summary>sentence_bert_config.json's max_seq_length: longer inputs are truncated to it; null when not given.</summary>
    public int? MaxSeqLength { get; init; }

    /// <summary>sentence_bert_config.json's do_lower_case: the text is lower-cased before it is tokenized. Default false.</summary>
    public bool LowercaseInput { get; init; }

    /// <summary>The Pooling config's word_embedding_dimension (the encoder's width), or null when not given.</summary>
    public int? WordEmbeddingDimension { get; init; }

    /// <summary>The Pooling module's config.json, named when its dimension does not fit the model.</summary>
    public required string PoolingConfigPath { get; init; }

    /// <summary>Most modules accepted in a modules.json (published pipelines have two to four).</summary>
    const int MaxModules = 64;

    /// <summary>
    /// Reads the pipeline of the sentence-transformers directory <paramref name="dir"/>; null when it has no
    /// modules.json (a plain checkpoint). Every failure is a <see cref="CheckpointFormatException"/> naming
    /// the file and, for an unsupported module, its type.
    /// </summary>
    public static SentenceTransformersConfig? Read(string dir)
    {
        var modulesPath = Path.Combine(dir, ModulesJson);
        if (!File.Exists(modulesPath)) return null;
        string? transformer = null, pooling = null;
        bool normalize = false;
        using (var doc = ReadJson(modulesPath))
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Array) throw new CheckpointFormatException($"{modulesPath}: not a JSON array of modules");
            if (root.GetArrayLength() > MaxModules) throw new CheckpointFormatException($"{modulesPath}: {root.GetArrayLength()} modules; at most {MaxModules} are read");
            int i = 0;
            foreach (var m in root.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{modulesPath}: module {i} is not an object");
                string type = Property(m, "type") is { ValueKind: JsonValueKind.String } t ? t.GetString()! : throw new CheckpointFormatException($"{modulesPath}: module {i} has no string 'type'");
                string path = Property(m, "path") is { } p ? (p.ValueKind == JsonValueKind.String ? p.GetString()! : throw new CheckpointFormatException($"{modulesPath}: module {i} 'path' is not a string")) : "";
                string folder = ModuleFolder(dir, path, modulesPath, i);
                switch (type)
                {
                    case TransformerType when transformer is null && pooling is null:
                        transformer = folder;
                        break;
                    case PoolingType when transformer is not null && pooling is null:
                        pooling = folder;
                        break;
                    case NormalizeType when pooling is not null && !normalize:
                        normalize = true;
                        break;
                    case TransformerType or PoolingType or NormalizeType:
                        throw new CheckpointFormatException($"{modulesPath}: module {i} '{type}' is out of place; Encore runs Transformer, Pooling, then an optional Normalize");
                    default:
                        throw new CheckpointFormatException($"{modulesPath}: module {i} '{type}' (path '{path}') is not supported (supported: Transformer, Pooling, Normalize)");
                }
                i++;
            }
        }
        if (transformer is null) throw new CheckpointFormatException($"{modulesPath}: no {TransformerType} module");
        if (pooling is null) throw new CheckpointFormatException($"{modulesPath}: no {PoolingType} module (token embeddings without pooling are not sentence embeddings)");

        var poolingPath = Path.Combine(pooling, "config.json");
        var (mode, dimension) = ReadPooling(poolingPath);
        int? maxSeq = null;
        bool lower = false;
        var sbertPath = Path.Combine(transformer, SentenceBertConfigJson);
        if (File.Exists(sbertPath))
        {
            using var doc = ReadJson(sbertPath);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{sbertPath}: not a JSON object");
            if (Property(doc.RootElement, "max_seq_length") is { } ms)
            {
                if (ms.ValueKind != JsonValueKind.Number || !ms.TryGetInt32(out int n) || n < 1 || n > ModelConfig.MaxSequence)
                    throw new CheckpointFormatException($"{sbertPath}: max_seq_length must be an integer in [1, {ModelConfig.MaxSequence}], got {ms.GetRawText()}");
                maxSeq = n;
            }
            if (Property(doc.RootElement, "do_lower_case") is { } dl)
                lower = dl.ValueKind switch
                {
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    _ => throw new CheckpointFormatException($"{sbertPath}: do_lower_case must be true or false, got {dl.GetRawText()}"),
                };
        }
        return new SentenceTransformersConfig
        {
            TransformerDirectory = transformer,
            Pooling = mode,
            Normalize = normalize,
            MaxSeqLength = maxSeq,
            LowercaseInput = lower,
            WordEmbeddingDimension = dimension,
            PoolingConfigPath = poolingPath,
        };
    }

    /// <summary>Throws naming the Pooling config when its word_embedding_dimension differs from the model's width <paramref name="width"/>.</summary>
    public void EnsureFits(int width)
    {
        if (WordEmbeddingDimension is int d && d != width)
            throw new CheckpointFormatException($"{PoolingConfigPath}: word_embedding_dimension {d} does not match the encoder's hidden size {width}");
    }

    // A module's folder: "" is the directory itself; anything else must stay inside it.
    static string ModuleFolder(string dir, string path, string modulesPath, int index)
    {
        if (path.Length == 0) return dir;
        if (path.Length > 255 || Path.IsPathRooted(path) || path.Any(char.IsControl)
            || path.Split('/', '\\').Any(part => part is "" or "." or ".."))
            throw new CheckpointFormatException($"{modulesPath}: module {index} path '{path}' must be a folder inside the model directory");
        return Path.Combine(dir, path);
    }

    static readonly (string Field, PoolingMode? Mode)[] s_poolingFlags =
    [
        ("pooling_mode_mean_tokens", PoolingMode.Mean),
        ("pooling_mode_cls_token", PoolingMode.Cls),
        ("pooling_mode_max_tokens", PoolingMode.Max),
        ("pooling_mode_mean_sqrt_len_tokens", null),
        ("pooling_mode_weightedmean_tokens", null),
        ("pooling_mode_lasttoken", null),
    ];

    static (PoolingMode Mode, int? Dimension) ReadPooling(string path)
    {
        if (!File.Exists(path)) throw new CheckpointFormatException($"{path}: the Pooling module has no config.json");
        using var doc = ReadJson(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: not a JSON object");
        var set = new List<(string Field, PoolingMode? Mode)>();
        foreach (var (field, mode) in s_poolingFlags)
        {
            if (Property(root, field) is not { } v) continue;
            if (v.ValueKind == JsonValueKind.True) set.Add((field, mode));
            else if (v.ValueKind != JsonValueKind.False) throw new CheckpointFormatException($"{path}: {field} must be true or false, got {v.GetRawText()}");
        }
        // Newer files may name the mode instead: "pooling_mode": "mean".
        if (Property(root, "pooling_mode") is { } named)
        {
            var name = named.ValueKind == JsonValueKind.String ? named.GetString()! : throw new CheckpointFormatException($"{path}: pooling_mode must be a string");
            PoolingMode? mode = name switch { "mean" => PoolingMode.Mean, "cls" => PoolingMode.Cls, "max" => PoolingMode.Max, _ => null };
            if (!set.Any(s => s.Mode == mode && mode != null)) set.Add(("pooling_mode '" + name + "'", mode));
        }
        if (set.Count == 0) throw new CheckpointFormatException($"{path}: no pooling mode is set (pooling_mode_mean_tokens, pooling_mode_cls_token or pooling_mode_max_tokens)");
        if (set.FirstOrDefault(s => s.Mode is null) is { Field: { } unsupported })
            throw new CheckpointFormatException($"{path}: {unsupported} is not supported (supported: mean, cls, max)");
        if (set.Count > 1)
            throw new CheckpointFormatException($"{path}: {string.Join(" and ", set.Select(s => s.Field))} are both set; Encore pools one way (concatenated poolings are not supported)");
        int? dimension = null;
        if (Property(root, "word_embedding_dimension") is { } wd)
        {
            if (wd.ValueKind != JsonValueKind.Number || !wd.TryGetInt32(out int d) || d < 1)
                throw new CheckpointFormatException($"{path}: word_embedding_dimension must be a positive integer, got {wd.GetRawText()}");
            dimension = d;
        }
        return (set[0].Mode!.Value, dimension);
    }
}

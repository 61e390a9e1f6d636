using System.Text.Json.Nodes;
using Encore.Models;
using Encore.Tensors.Kernels;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// Reads Hugging Face config.json fields with errors that name the file and the field: required
/// fields fail when absent, optional ones take the documented default when absent or null.
/// </summary>
public readonly struct HfConfigFields
{
    readonly JsonObject _json;
    readonly string _prefix;

    /// <summary>Fields of <paramref name="json"/>, read from <paramref name="path"/>; <paramref name="prefix"/> qualifies nested field names.</summary>
    public HfConfigFields(JsonObject json, string path, string prefix = "")
    {
        _json = json;
        Path = path;
        _prefix = prefix;
    }

    /// <summary>The file the fields come from.</summary>
    public string Path { get; }

    /// <summary>An error about field <paramref name="name"/>.</summary>
    public CheckpointFormatException Error(string name, string problem) => new($"{Path}: field '{_prefix}{name}' {problem}");

    /// <summary>The raw node of <paramref name="name"/>; null when absent or JSON null.</summary>
    public JsonNode? Node(string name) => _json.TryGetPropertyValue(name, out var n) ? n : null;

    /// <summary>A required positive integer.</summary>
    public int Positive(string name) => PositiveOrNull(name) ?? throw Error(name, "is required");

    /// <summary>A positive integer, <paramref name="fallback"/> when absent or null.</summary>
    public int Positive(string name, int fallback) => PositiveOrNull(name) ?? fallback;

    /// <summary>A positive integer or null when absent.</summary>
    public int? PositiveOrNull(string name)
    {
        var v = IntOrNull(name);
        if (v is < 1) throw Error(name, $"must be positive, got {v}");
        return v;
    }

    /// <summary>An integer (written as 32 or 32.0) or null when absent.</summary>
    public int? IntOrNull(string name)
    {
        var n = Node(name);
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out double x) && x == Math.Floor(x) && Math.Abs(x) <= int.MaxValue) return (int)x;
        throw Error(name, $"must be an integer, got {n.ToJsonString()}");
    }

    /// <summary>
    /// An integer in [<paramref name="min"/>, <paramref name="max"/>]; <paramref name="fallback"/> when
    /// absent or null, and when that is null too the field is required. The bounds make a damaged file
    /// fail before the model allocates.
    /// </summary>
    public int Int(string name, int? fallback, int min, int max)
    {
        var value = IntOrNull(name) ?? fallback ?? throw Error(name, "is missing (this model type's config.json must state it)");
        if (value < min || value > max) throw Error(name, $"{value} is outside [{min}, {max}]");
        return value;
    }

    /// <summary>A finite number, <paramref name="fallback"/> when absent or null.</summary>
    public double Number(string name, double fallback)
    {
        var n = Node(name);
        if (n is null) return fallback;
        if (n is JsonValue v && v.TryGetValue(out double x) && double.IsFinite(x)) return x;
        throw Error(name, $"must be a number, got {n.ToJsonString()}");
    }

    /// <summary>A token id below <paramref name="vocab"/>: an integer, the first of a list of integers, or null when absent.</summary>
    public int? TokenId(string name, int vocab)
    {
        var id = TokenId(name);
        if (id >= vocab) throw Error(name, $"{id} is outside the vocabulary (vocab_size {vocab})");
        return id;
    }

    int? TokenId(string name)
    {
        var n = Node(name);
        if (n is JsonArray a)
        {
            if (a.Count == 0) return null;
            if (a[0] is JsonValue v && v.TryGetValue(out double x) && x == Math.Floor(x) && x is >= 0 and <= int.MaxValue) return (int)x;
            throw Error(name, $"must hold integer ids, got {n.ToJsonString()}");
        }
        var id = IntOrNull(name);
        if (id is < 0) throw Error(name, $"must not be negative, got {id}");
        return id;
    }

    /// <summary>A required positive finite number.</summary>
    public double PositiveDouble(string name) => PositiveDoubleOrNull(name) ?? throw Error(name, "is required");

    /// <summary>A positive finite number, <paramref name="fallback"/> when absent or null.</summary>
    public double PositiveDouble(string name, double fallback) => PositiveDoubleOrNull(name) ?? fallback;

    double? PositiveDoubleOrNull(string name)
    {
        var n = Node(name);
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out double x))
            return x > 0 && double.IsFinite(x) ? x : throw Error(name, $"must be positive, got {x}");
        throw Error(name, $"must be a number, got {n.ToJsonString()}");
    }

    /// <summary>A number in [0, 1), <paramref name="fallback"/> when absent or null.</summary>
    public double Probability(string name, double fallback)
    {
        var n = Node(name);
        if (n is null) return fallback;
        if (n is JsonValue v && v.TryGetValue(out double x))
            return x is >= 0 and < 1 ? x : throw Error(name, $"must be in [0, 1), got {x}");
        throw Error(name, $"must be a number, got {n.ToJsonString()}");
    }

    /// <summary>A boolean, <paramref name="fallback"/> when absent or null.</summary>
    public bool Bool(string name, bool fallback)
    {
        var n = Node(name);
        if (n is null) return fallback;
        if (n is JsonValue v && v.TryGetValue(out bool b)) return b;
        throw Error(name, $"must be true or false, got {n.ToJsonString()}");
    }

    /// <summary>A string or null when absent.</summary>
    public string? StringOrNull(string name)
    {
        var n = Node(name);
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out string? s)) return s;
        throw Error(name, $"must be a string, got {n.ToJsonString()}");
    }

    /// <summary>An activation by transformers' ACT2FN name (see <see cref="ActivationOf"/>), <paramref name="fallback"/> when absent or null.</summary>
    public ActivationKind Activation(string name, string fallback)
    {
        string act = StringOrNull(name) ?? fallback;
        return ActivationOf(act) ?? throw Error(name, $"'{act}' is not a supported activation (supported: {SupportedActivations})");
    }

    /// <summary>The ACT2FN names Encore computes.</summary>
    public const string SupportedActivations = "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish, relu, linear";

    /// <summary>
    /// The Encore activation of a transformers ACT2FN name, or null for one Encore does not compute:
    /// "gelu" (exact erf), "gelu_new" / "gelu_pytorch_tanh" / "gelu_fast" (tanh approximation, the same
    /// formula; gelu_fast writes 0.7978845608 for √(2/π)), "silu" / "swish", "relu", "linear" (the identity).
    /// </summary>
    public static ActivationKind? ActivationOf(string name) => name switch
    {
        "gelu" => ActivationKind.GeluErf,
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => ActivationKind.GeluTanh,
        "silu" or "swish" => ActivationKind.Silu,
        "relu" => ActivationKind.Relu,
        "linear" => ActivationKind.Identity,
        _ => null,
    };

    /// <summary>The ACT2FN name written for <paramref name="kind"/>.</summary>
    public static string ActivationName(ActivationKind kind) => kind switch
    {
        ActivationKind.GeluErf => "gelu",
        ActivationKind.GeluTanh => "gelu_new",
        ActivationKind.Silu => "silu",
        ActivationKind.Relu => "relu",
        ActivationKind.Identity => "linear",
        _ => throw new ArgumentException($"activation {kind} has no transformers name"),
    };

    /// <summary>The transformers names of Encore's fields in Llama-style configs (Llama, Qwen2, BERT).</summary>
    public static readonly IReadOnlyList<(string Encore, string Hf)> LlamaFieldNames =
    [
        ("d_model", "hidden_size"), ("kv_heads", "num_key_value_heads"), ("heads", "num_attention_heads"),
        ("ffn_dim", "intermediate_size"), ("encoder_layers", "num_hidden_layers"), ("decoder_layers", "num_hidden_layers"),
        ("max_positions", "max_position_embeddings"), ("vocab_size", "vocab_size"), ("head_dim", "head_dim"),
        ("type_vocab_size", "type_vocab_size"), ("rope_theta", "rope_theta"),
    ];

    /// <summary>
    /// Runs <see cref="ModelConfig.Validate"/>, turning its errors into format errors naming the file
    /// and, through <paramref name="fieldNames"/> (Encore's field name in Validate's messages → the
    /// family's config.json name), the field.
    /// </summary>
    public ModelConfig Validated(ModelConfig config, IReadOnlyList<(string Encore, string Hf)>? fieldNames = null)
    {
        try
        {
            return config.Validate();
        }
        catch (ArgumentException e)
        {
            var field = (fieldNames ?? []).FirstOrDefault(f => e.Message.Contains(f.Encore + " ", StringComparison.Ordinal));
            string named = field.Hf is null ? "" : $" (field '{_prefix}{field.Hf}')";
            throw new CheckpointFormatException($"{Path}: {e.Message}{named}", e);
        }
    }
}

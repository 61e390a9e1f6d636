// The configuration of an imported BERT encoder: a config.json given or lying beside the ONNX file, or
// one inferred from the graph (see OnnxBertImport.cs): sizes from the tables' shapes, the head count from
// the Reshape after the query projection, LayerNorm's epsilon from the constant it adds to the variance,
// and the activation from the Erf of an exact GELU.
using System.Globalization;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;

namespace Encore.Formats.Onnx;

public static partial class OnnxBertImport
{
    /// <summary>The config.json given or found beside the file, else null (the configuration is inferred).</summary>
    static string? ConfigFile(string onnxPath, string? configPath)
    {
        if (configPath is null) return BesideOrParent(onnxPath, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{configPath}: no such file", configPath);
        return configPath;
    }

    // name in the ONNX file's folder, else in its parent when the folder is Hugging Face's "onnx".
    static string? BesideOrParent(string onnxPath, string name)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(onnxPath))!;
        var beside = Path.Combine(dir, name);
        if (File.Exists(beside)) return beside;
        if (Path.GetFileName(dir) == "onnx" && Path.GetDirectoryName(dir) is { } parent && File.Exists(Path.Combine(parent, name))) return Path.Combine(parent, name);
        return null;
    }

    static JsonObject Infer(OnnxModel model, Graph g, Dictionary<string, Weight> tensors)
    {
        string path = model.Path;
        CheckpointFormatException Missing(string what) => new($"{path}: cannot tell {what} from the graph; pass the model's config.json (encore convert --config)");
        Weight? Find(string name) => tensors.TryGetValue(name, out var w) || tensors.TryGetValue("bert." + name, out w) ? w : null;
        Weight Need(string name, string why) => Find(name) ?? throw new CheckpointFormatException($"{path}: no {name} initializer{why}");
        var words = Need("embeddings.word_embeddings.weight", "");
        var positions = Need("embeddings.position_embeddings.weight", " (Encore reads BERT's absolute positions)");
        if (words.Shape.Length != 2 || positions.Shape.Length != 2)
            throw new CheckpointFormatException($"{path}: the embedding tables are {words.Source.Describe()} and {positions.Source.Describe()}, not matrices");
        int vocab = words.Shape[0], d = words.Shape[1];
        int types = Find("embeddings.token_type_embeddings.weight") is { Shape: [var tv, _] } ? tv : 0;
        var layers = new SortedSet<int>();
        foreach (var name in tensors.Keys)
        {
            var parts = Unprefixed(name).Split('.');
            if (parts.Length > 3 && parts[0] == "encoder" && parts[1] == "layer" && int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out int i)) layers.Add(i);
        }
        if (layers.Count == 0 || layers.Min != 0 || layers.Max != layers.Count - 1)
            throw new CheckpointFormatException($"{path}: the encoder layers found are [{string.Join(", ", layers)}], not 0 … n−1");
        var ffn = Find("encoder.layer.0.intermediate.dense.weight") ?? throw Missing("the feed-forward width (no encoder.layer.0.intermediate.dense weight was named)");
        if (ffn.Shape.Length != 2) throw new CheckpointFormatException($"{path}: encoder.layer.0.intermediate.dense.weight is {ffn.Source.Describe()}, not a matrix");
        int heads = Heads(model, g, tensors, d) ?? throw Missing("the number of attention heads (the query projection is not reshaped by a constant shape)");
        double eps = LayerNormEps(model, g) ?? throw Missing("LayerNorm's epsilon (embeddings.LayerNorm is not a recognized LayerNorm)");
        string act = model.Nodes.Any(n => n.OpType == "Erf") ? "gelu"
            : model.Nodes.FirstOrDefault(n => n.OpType == "Gelu") is { } gelu ? (gelu.Attributes.TryGetValue("approximate", out var a) && a.String == "tanh" ? "gelu_new" : "gelu")
            : throw Missing("the activation (the graph has no Erf or Gelu)");
        return new JsonObject
        {
            ["architectures"] = new JsonArray("BertModel"),
            ["model_type"] = "bert",
            ["vocab_size"] = vocab,
            ["hidden_size"] = d,
            ["num_hidden_layers"] = layers.Count,
            ["num_attention_heads"] = heads,
            ["intermediate_size"] = ffn.Shape[0],
            ["hidden_act"] = act,
            ["max_position_embeddings"] = positions.Shape[0],
            ["type_vocab_size"] = types,
            // The float constant as its shortest decimal (1e-12, not 9.99999996e-13).
            ["layer_norm_eps"] = double.Parse(((float)eps).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
            ["position_embedding_type"] = "absolute",
            ["pad_token_id"] = 0,
        };
    }

    // The query projection's output is reshaped to (B, S, H, hd) before the heads are split: H is the
    // constant third entry of that shape, whether the shape is one constant or a Concat of pieces.
    static int? Heads(OnnxModel model, Graph g, Dictionary<string, Weight> tensors, int d)
    {
        var query = tensors.Keys.FirstOrDefault(k => Unprefixed(k) == "encoder.layer.0.attention.self.query.weight");
        if (query is null || !g.LinearNode.TryGetValue(query, out var matmul)) return null;
        var values = new List<string> { matmul.Outputs[0] };
        foreach (var n in g.Uses(matmul.Outputs[0]))
            if (n.OpType == "Add" && n.Outputs.Length > 0) values.Add(n.Outputs[0]);
        foreach (var v in values)
            foreach (var reshape in g.Uses(v).Where(n => n.OpType == "Reshape" && n.Inputs.Length == 2))
            {
                var shape = ShapeEntries(model, g, reshape.Inputs[1]);
                if (shape is [_, _, long h, long hd] && h > 0 && hd > 0 && h * hd == d) return (int)h;
                if (shape is [_, _, long h2, -1] && h2 > 0 && d % h2 == 0) return (int)h2;
            }
        return null;
    }

    // The entries of a shape operand that are constants (null where computed at run time).
    static long?[]? ShapeEntries(OnnxModel model, Graph g, string name)
    {
        if (g.Const(name) is { } c) return model.ReadIntegers(c, 16)?.Select(v => (long?)v).ToArray();
        if (!g.Producer.TryGetValue(name, out var concat) || concat.OpType != "Concat" || concat.Inputs.Length > 16) return null;
        var entries = new List<long?>();
        foreach (var part in concat.Inputs)
        {
            if (g.Const(part) is { } pc && model.ReadIntegers(pc, 16) is { } values) entries.AddRange(values.Select(v => (long?)v));
            else entries.Add(null);   // a computed piece (batch or sequence length) is one entry: an Unsqueeze of a scalar
        }
        return [.. entries];
    }

    // LayerNormalization's epsilon, or the constant of the decomposed LayerNorm torch exports below
    // opset 17: Mul(Div(x − mean, Sqrt(Add(var, ε))), γ).
    static double? LayerNormEps(OnnxModel model, Graph g)
    {
        var gamma = g.Initializers.Keys.FirstOrDefault(k => Unprefixed(k) == "embeddings.LayerNorm.weight");
        if (gamma is null) return null;
        foreach (var n in g.Uses(gamma))
        {
            if (n.OpType == "LayerNormalization")
                return n.Attributes.TryGetValue("epsilon", out var e) && e.Float is float f ? f : 1e-5;
            if (n.OpType != "Mul") continue;
            var other = n.Inputs[0] == gamma ? n.Inputs[1] : n.Inputs[0];
            if (!g.Producer.TryGetValue(other, out var div) || div.OpType != "Div" || div.Inputs.Length != 2) continue;
            if (!g.Producer.TryGetValue(div.Inputs[1], out var sqrt) || sqrt.OpType != "Sqrt") continue;
            if (!g.Producer.TryGetValue(sqrt.Inputs[0], out var add) || add.OpType != "Add") continue;
            foreach (var input in add.Inputs)
                if (g.Const(input) is { } c && model.ReadScalar(c) is float eps && eps > 0) return eps;
        }
        return null;
    }
}

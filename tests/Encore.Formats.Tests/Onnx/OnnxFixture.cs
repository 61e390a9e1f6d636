using System.Text;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tests.Parity;

namespace Encore.Formats.Tests.Onnx;

/// <summary>
/// Writes ONNX files in the shape torch.onnx.export gives a BertModel (opset 13): the tiny BERT fixture's
/// weights, with every Linear weight stored transposed under a generated number and used by MatMul + Add of
/// its named bias, the query projection reshaped by a Concat of constant head sizes, the embedding LayerNorm
/// decomposed with ε as a Constant node, Erf for the GELU and the pooler as a Gemm with transB = 1. The
/// graph is the structure the importer follows, not a runnable model. A small protobuf writer, enough
/// for ModelProto.
/// </summary>
internal sealed class OnnxFixture
{
    /// <summary>How a variant of the export differs.</summary>
    public sealed record Variant
    {
        /// <summary>Weights stored as float16 instead of float32.</summary>
        public bool Float16 { get; init; }
        /// <summary>Linear weights stored (out, in) and passed through a Transpose node, as some exporters do.</summary>
        public bool TransposeNodes { get; init; }
        /// <summary>The "bert." prefix on every module name (a BertForMaskedLM export).</summary>
        public bool Prefixed { get; init; }
        /// <summary>Layer 1's query projection has no bias Add (so its weight cannot be named).</summary>
        public bool UnnamedQuery { get; init; }
        /// <summary>No Concat of constant head sizes (the head count cannot be inferred).</summary>
        public bool NoHeadShape { get; init; }
    }

    readonly List<byte[]> _nodes = [];
    readonly List<byte[]> _initializers = [];
    int _next = 900;

    /// <summary>The ONNX bytes of the tiny BERT fixture exported as <paramref name="v"/> says.</summary>
    public static byte[] TinyBert(Variant? v = null)
    {
        v ??= new Variant();
        var f = new OnnxFixture();
        using var st = SafetensorsCheckpoint.Open(ParityFixtures.Dir("bert"));
        float[] Read(string name)
        {
            using var t = st.Read("bert." + name);
            return t.ToFloatArray();
        }
        string P(string name) => v.Prefixed ? "bert." + name : name;
        void Named(string name, int[] shape) => f.Initializer(P(name), shape, Read(name), v.Float16);

        Named("embeddings.word_embeddings.weight", [64, 32]);
        Named("embeddings.position_embeddings.weight", [32, 32]);
        Named("embeddings.token_type_embeddings.weight", [2, 32]);
        Named("embeddings.LayerNorm.weight", [32]);
        Named("embeddings.LayerNorm.bias", [32]);
        f.Initializer("heads", [1], 4L);
        f.Initializer("head_dim", [1], 8L);

        f.Node("Gather", [P("embeddings.word_embeddings.weight"), "input_ids"], ["words"]);
        f.Node("Gather", [P("embeddings.token_type_embeddings.weight"), "token_type_ids"], ["types"]);
        f.Node("Add", ["words", "types"], ["emb"]);
        // LayerNorm as torch exports it below opset 17: (x − mean) / sqrt(var + ε) · γ + β.
        f.Node("ReduceMean", ["emb"], ["mean"], ints: ("axes", [-1]));
        f.Node("Sub", ["emb", "mean"], ["centered"]);
        f.ConstantScalar("two", 2f);
        f.Node("Pow", ["centered", "two"], ["squared"]);
        f.Node("ReduceMean", ["squared"], ["variance"], ints: ("axes", [-1]));
        f.ConstantScalar("eps", 1e-12f);
        f.Node("Add", ["variance", "eps"], ["variance_eps"]);
        f.Node("Sqrt", ["variance_eps"], ["std"]);
        f.Node("Div", ["centered", "std"], ["normalized"]);
        f.Node("Mul", ["normalized", P("embeddings.LayerNorm.weight")], ["scaled"]);
        f.Node("Add", ["scaled", P("embeddings.LayerNorm.bias")], ["x0"]);

        string x = "x0";
        for (int layer = 0; layer < 2; layer++)
        {
            string L(string m) => $"encoder.layer.{layer}.{m}";
            foreach (var n in new[] { "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias", "output.LayerNorm.weight", "output.LayerNorm.bias" })
                Named(L(n), [32]);
            string Linear(string input, string module, int inDim, int outDim, bool bias = true)
            {
                var w = Read(L(module) + ".weight");                       // (out, in), PyTorch's layout
                string output = f.Fresh();
                string weightInput;
                if (v.TransposeNodes)
                {
                    string stored = f.Fresh();
                    f.Initializer(stored, [outDim, inDim], w, v.Float16);
                    weightInput = f.Fresh();
                    f.Node("Transpose", [stored], [weightInput], ints: ("perm", [1, 0]));
                }
                else
                {
                    weightInput = f.Fresh();
                    f.Initializer(weightInput, [inDim, outDim], Transposed(w, outDim, inDim), v.Float16);
                }
                f.Node("MatMul", [input, weightInput], [output]);
                if (!bias) return output;
                Named(L(module) + ".bias", [outDim]);
                string sum = f.Fresh();
                f.Node("Add", [P(L(module) + ".bias"), output], [sum]);
                return sum;
            }
            string q = Linear(x, "attention.self.query", 32, 32, bias: !(v.UnnamedQuery && layer == 1));
            string k = Linear(x, "attention.self.key", 32, 32);
            string val = Linear(x, "attention.self.value", 32, 32);
            if (!v.NoHeadShape)
            {
                f.Node("Concat", ["batch", "length", "heads", "head_dim"], [q + "_shape"], ints: ("axis", [0]));
                f.Node("Reshape", [q, q + "_shape"], [q + "_heads"]);
            }
            f.Node("Softmax", [q, k], ["scores" + layer]);
            f.Node("MatMul", ["scores" + layer, val], ["context" + layer]);
            string o = Linear("context" + layer, "attention.output.dense", 32, 32);
            f.Node("Add", [o, x], ["attn" + layer]);
            string h = Linear("attn" + layer, "intermediate.dense", 32, 48);
            f.Node("Erf", [h], ["erf" + layer]);
            x = Linear("erf" + layer, "output.dense", 48, 32);
        }
        // The pooler as torch exports it: Gemm(first token, W (out, in), b) with transB = 1.
        f.Initializer(P("pooler.dense.weight"), [32, 32], Read("encoder.layer.0.attention.self.query.weight"), v.Float16);
        f.Initializer(P("pooler.dense.bias"), [32], Read("encoder.layer.0.attention.self.query.bias"), v.Float16);
        f.Node("Gemm", [x, P("pooler.dense.weight"), P("pooler.dense.bias")], ["pooled"], ints: ("transB", [1]));
        return f.Model(x);
    }

    static float[] Transposed(float[] w, int rows, int cols)
    {
        var t = new float[w.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
        return t;
    }

    string Fresh() => (_next++).ToString(System.Globalization.CultureInfo.InvariantCulture);

    void Initializer(string name, int[] shape, float[] values, bool f16) => _initializers.Add(TensorProto(name, shape, values, f16));

    void Initializer(string name, int[] shape, long value)
    {
        var t = new List<byte>();
        foreach (int d in shape) Int(t, 1, d);
        Int(t, 2, 7);
        Str(t, 8, name);
        Bytes(t, 9, BitConverter.GetBytes(value));
        _initializers.Add([.. t]);
    }

    /// <summary>A TensorProto: dims, data_type, name, raw_data.</summary>
    public static byte[] TensorProto(string name, int[] shape, float[] values, bool f16 = false)
    {
        var t = new List<byte>();
        foreach (int d in shape) Int(t, 1, d);
        Int(t, 2, f16 ? 10 : 1);
        Str(t, 8, name);
        var raw = f16 ? values.SelectMany(x => BitConverter.GetBytes((Half)x)).ToArray() : values.SelectMany(BitConverter.GetBytes).ToArray();
        Bytes(t, 9, raw);
        return [.. t];
    }

    void ConstantScalar(string output, float value)
    {
        var attr = new List<byte>();
        Str(attr, 1, "value");
        Bytes(attr, 5, TensorProto("", [], [value]));
        Int(attr, 20, 4);
        Node("Constant", [], [output], extra: [.. attr]);
    }

    void Node(string op, string[] inputs, string[] outputs, (string Name, long[] Values)? ints = null, byte[]? extra = null)
    {
        var n = new List<byte>();
        foreach (var i in inputs) Str(n, 1, i);
        foreach (var o in outputs) Str(n, 2, o);
        Str(n, 3, $"{op}_{_nodes.Count}");
        Str(n, 4, op);
        if (ints is { } a)
        {
            var attr = new List<byte>();
            Str(attr, 1, a.Name);
            if (a.Values.Length == 1 && a.Name is "transB" or "axis") Int(attr, 3, a.Values[0]);
            else foreach (var value in a.Values) Int(attr, 8, value);
            Int(attr, 20, a.Values.Length == 1 && a.Name is "transB" or "axis" ? 2 : 7);
            Bytes(n, 5, [.. attr]);
        }
        if (extra != null) Bytes(n, 5, extra);
        _nodes.Add([.. n]);
    }

    byte[] Model(string output)
    {
        var g = new List<byte>();
        foreach (var n in _nodes) Bytes(g, 1, n);
        Str(g, 2, "main_graph");
        foreach (var i in _initializers) Bytes(g, 5, i);
        foreach (var name in new[] { "input_ids", "attention_mask", "token_type_ids" }) Bytes(g, 11, ValueInfo(name));
        Bytes(g, 12, ValueInfo(output));
        var m = new List<byte>();
        Int(m, 1, 7);
        Str(m, 2, "pytorch");
        Str(m, 3, "1.10");
        Bytes(m, 7, [.. g]);
        var opset = new List<byte>();
        Int(opset, 2, 13);
        Bytes(m, 8, [.. opset]);
        return [.. m];
    }

    static byte[] ValueInfo(string name)
    {
        var v = new List<byte>();
        Str(v, 1, name);
        return [.. v];
    }

    public static void Varint(List<byte> o, ulong v)
    {
        while (v >= 0x80)
        {
            o.Add((byte)(v | 0x80));
            v >>= 7;
        }
        o.Add((byte)v);
    }

    public static void Int(List<byte> o, int field, long v)
    {
        Varint(o, (ulong)(field << 3));
        Varint(o, unchecked((ulong)v));
    }

    public static void Bytes(List<byte> o, int field, ReadOnlySpan<byte> b)
    {
        Varint(o, (ulong)(field << 3 | 2));
        Varint(o, (ulong)b.Length);
        o.AddRange(b.ToArray());
    }

    public static void Str(List<byte> o, int field, string s) => Bytes(o, field, Encoding.UTF8.GetBytes(s));
}

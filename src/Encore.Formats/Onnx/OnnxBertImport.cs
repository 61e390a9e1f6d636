// Imports the weights of a BERT encoder exported to ONNX (torch.onnx.export of transformers' BertModel,
// as sentence-transformers models are published: all-MiniLM-L6-v2's onnx/model.onnx) into an Encore
// checkpoint directory in the Hugging Face BertModel layout (config.json, model.safetensors).
//
// What the exporter leaves and how each part is named here:
//   - Tensors the graph reads as they are (embedding tables read by Gather, LayerNorm gains and biases,
//     Linear biases, the pooler's Gemm weight) keep their PyTorch state-dict names, e.g.
//     "embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.bias".
//   - A Linear layer becomes MatMul(x, W) + Add(bias) with W stored transposed, (in, out), under a
//     generated name ("927", "onnx::MatMul_927"). Such a W is named by the graph: the Add that takes the
//     MatMul's output adds a named bias "<module>.bias", so W is "<module>.weight", transposed back to
//     PyTorch's (out, in). A Transpose node between the initializer and the MatMul, or a Gemm with
//     transB = 1, means the stored tensor is already (out, in). A MatMul whose weight has a module name
//     of its own and no bias is named by that.
//   - Everything outside the encoder (embeddings.*, encoder.*, pooler.*, with or without "bert.") is
//     left out and listed; integer initializers (position_ids, shape constants) are not weights.
// The configuration is read from a config.json given or lying beside the file (or in its parent, the
// Hugging Face layout onnx/model.onnx), else inferred: sizes from the tables' shapes, the head count from
// the constant shape of the Reshape after the query projection, LayerNorm's ε from the constant the
// first LayerNorm adds to the variance, and the activation from the Erf (exact GELU) in the graph.
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Models;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Formats.Onnx;

/// <summary>How <see cref="OnnxBertImport.Convert"/> runs. Each option has one documented default.</summary>
public sealed record OnnxImportOptions
{
    /// <summary>
    /// A Hugging Face config.json (model_type "bert") describing the model. Default null: the config.json
    /// beside the ONNX file or in its parent folder, else a configuration inferred from the graph.
    /// </summary>
    public string? ConfigPath { get; init; }
}

/// <summary>What an import wrote and how it found it.</summary>
public sealed record OnnxImportResult
{
    /// <summary>The checkpoint directory written.</summary>
    public required string OutputDirectory { get; init; }
    /// <summary>The model's configuration.</summary>
    public required ModelConfig Config { get; init; }
    /// <summary>Where the configuration came from: a config.json path, or "the graph".</summary>
    public required string ConfigSource { get; init; }
    /// <summary>Weights stored under their PyTorch names.</summary>
    public required int NamedTensors { get; init; }
    /// <summary>Linear weights named through the graph (MatMul or Gemm followed by a named bias).</summary>
    public required int GraphNamedTensors { get; init; }
    /// <summary>Floating initializers outside the encoder, left out.</summary>
    public required IReadOnlyList<string> Ignored { get; init; }
    /// <summary>Tokenizer and sentence-transformers files copied beside the weights.</summary>
    public required IReadOnlyList<string> CopiedFiles { get; init; }
    /// <summary>Parameters (values) written.</summary>
    public required long Parameters { get; init; }
}

/// <summary>ONNX BERT encoder → Encore checkpoint directory (see the file header for the mapping).</summary>
public static partial class OnnxBertImport
{
    static readonly string[] s_tokenizerFiles =
    [
        TokenizerLoader.VocabTxt, TokenizerLoader.TokenizerJson, TokenizerLoader.TokenizerConfigJson, TokenizerLoader.SpecialTokensMapJson,
        TokenizerLoader.AddedTokensJson,
    ];

    /// <summary>
    /// Reads the BERT encoder in <paramref name="onnxPath"/> and writes it to <paramref name="outputDirectory"/>
    /// (which must not exist or be empty) as config.json, model.safetensors and the tokenizer and
    /// sentence-transformers files found beside the model. The directory appears whole or not at all: it is
    /// written under a temporary name, loaded back as a check, then renamed. Failures are
    /// <see cref="CheckpointFormatException"/>s naming the file and what does not fit.
    /// </summary>
    public static OnnxImportResult Convert(string onnxPath, string outputDirectory, OnnxImportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(onnxPath);
        ArgumentNullException.ThrowIfNull(outputDirectory);
        options ??= new OnnxImportOptions();
        var outDir = Path.GetFullPath(outputDirectory);
        if (File.Exists(outDir) || (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any()))
            throw new IOException($"{outputDirectory}: already exists and is not an empty directory; choose a new output folder");

        using var model = OnnxModel.Open(onnxPath);
        var graph = new Graph(model);
        var (tensors, graphNamed, ignored) = MapWeights(model, graph);
        var configSource = ConfigFile(onnxPath, options.ConfigPath);
        var inferred = configSource is null ? Infer(model, graph, tensors) : null;

        var parent = Path.GetDirectoryName(outDir) ?? ".";
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(outDir)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        var read = new List<KeyValuePair<string, Tensor>>();
        try
        {
            Directory.CreateDirectory(temp);
            foreach (var (name, w) in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
            {
                var stored = model.ReadTensor(w.Source);
                if (!w.Transpose)
                {
                    read.Add(new(name, stored));
                    continue;
                }
                using (stored)
                using (var view = stored.Transpose(0, 1))
                    read.Add(new(name, view.Clone()));
            }
            SafetensorsCheckpoint.Write(temp, read);
            if (inferred != null) AtomicFile.WriteAllText(Path.Combine(temp, "config.json"), inferred.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else File.Copy(configSource!, Path.Combine(temp, "config.json"));
            var (_, arch) = Checkpoint.ReadConfig(temp);
            if (arch is not BertArchitecture)
                throw new CheckpointFormatException($"{configSource}: model_type '{arch.ModelType}'; the ONNX importer reads BERT encoders (model_type bert)");
            var copied = CopySideFiles(onnxPath, configSource, temp);

            ModelConfig config;
            long parameters;
            try
            {
                using var loaded = Checkpoint.Load(temp, new CheckpointLoadOptions { MapWeights = true });
                config = loaded.Config;
                parameters = loaded.ParameterCount;
            }
            catch (CheckpointFormatException e)
            {
                var unnamed = graph.UnnamedMatMuls.Count == 0 ? ""
                    : $"; MatMul weights the graph does not name (no Add of a named bias follows): {string.Join(", ", graph.UnnamedMatMuls.Take(8))}";
                throw new CheckpointFormatException($"{onnxPath}: the weights do not form a BERT encoder: {e.Message.Replace(temp, "the import")}{unnamed}", e);
            }
            if (Directory.Exists(outDir)) Directory.Delete(outDir);
            Directory.Move(temp, outDir);
            return new OnnxImportResult
            {
                OutputDirectory = outDir,
                Config = config,
                ConfigSource = configSource ?? "the graph",
                NamedTensors = tensors.Count - graphNamed,
                GraphNamedTensors = graphNamed,
                Ignored = ignored,
                CopiedFiles = copied,
                Parameters = parameters,
            };
        }
        finally
        {
            foreach (var t in read) t.Value.Dispose();
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>A weight as stored in the file and whether it must be transposed to PyTorch's (out, in).</summary>
    readonly record struct Weight(OnnxTensor Source, bool Transpose, int[] Shape);

    /// <summary>The graph's values by name: initializers, Constant outputs, producers and consumers.</summary>
    sealed class Graph
    {
        public readonly Dictionary<string, OnnxTensor> Initializers = new(StringComparer.Ordinal);
        public readonly Dictionary<string, OnnxTensor> Constants = new(StringComparer.Ordinal);
        public readonly Dictionary<string, OnnxNode> Producer = new(StringComparer.Ordinal);
        public readonly Dictionary<string, List<OnnxNode>> Consumers = new(StringComparer.Ordinal);
        public readonly List<string> UnnamedMatMuls = [];
        /// <summary>The MatMul or Gemm node each graph-named weight came from.</summary>
        public readonly Dictionary<string, OnnxNode> LinearNode = new(StringComparer.Ordinal);

        public Graph(OnnxModel m)
        {
            foreach (var t in m.Initializers)
                if (!Initializers.TryAdd(t.Name, t)) throw new CheckpointFormatException($"{m.Path}: initializer '{t.Name}' is defined twice");
            foreach (var n in m.Nodes)
            {
                foreach (var o in n.Outputs)
                    if (o.Length > 0) Producer.TryAdd(o, n);
                foreach (var i in n.Inputs)
                {
                    if (i.Length == 0) continue;
                    if (!Consumers.TryGetValue(i, out var list)) Consumers[i] = list = [];
                    list.Add(n);
                }
                if (n.OpType == "Constant" && n.Outputs.Length == 1 && n.Attributes.TryGetValue("value", out var v) && v.Tensor is { } t)
                    Constants[n.Outputs[0]] = t;
            }
        }

        public OnnxTensor? Const(string name) => Initializers.TryGetValue(name, out var t) ? t : Constants.GetValueOrDefault(name);

        public IReadOnlyList<OnnxNode> Uses(string name) => Consumers.TryGetValue(name, out var l) ? l : [];
    }

    static bool IsModuleName(string name) =>
        (name.EndsWith(".weight", StringComparison.Ordinal) || name.EndsWith(".bias", StringComparison.Ordinal)) && !name.StartsWith("onnx::", StringComparison.Ordinal);

    static string Unprefixed(string name) => name.StartsWith("bert.", StringComparison.Ordinal) ? name["bert.".Length..] : name;

    static bool InEncoder(string name) => Unprefixed(name) is var n
        && (n.StartsWith("embeddings.", StringComparison.Ordinal) || n.StartsWith("encoder.", StringComparison.Ordinal) || n.StartsWith("pooler.", StringComparison.Ordinal));

    /// <summary>Every encoder weight under its PyTorch name, how many were named through the graph, and the floating initializers left out.</summary>
    static (Dictionary<string, Weight> Tensors, int GraphNamed, List<string> Ignored) MapWeights(OnnxModel model, Graph g)
    {
        var result = new Dictionary<string, Weight>(StringComparer.Ordinal);
        var linearSources = new HashSet<string>(StringComparer.Ordinal);
        void Put(string name, Weight w, string how)
        {
            if (result.TryGetValue(name, out var old) && old.Source.Name != w.Source.Name)
                throw new CheckpointFormatException($"{model.Path}: '{name}' is given twice ({how}: initializers '{old.Source.Name}' and '{w.Source.Name}')");
            result[name] = w;
        }

        foreach (var node in model.Nodes)
        {
            if (node.OpType is not ("MatMul" or "Gemm") || node.Inputs.Length < 2 || node.Outputs.Length < 1) continue;
            bool gemm = node.OpType == "Gemm";
            if (gemm && node.Int("transA", 0) != 0) continue;
            // The stored layout: MatMul's B and Gemm's B with transB = 0 are (in, out); a Transpose in between or transB = 1 flips it.
            if (WeightInput(g, node.Inputs[1]) is not { } weight) continue;
            var (source, flipped) = weight;
            if (source.Dims.Length != 2 || !OnnxModel.IsFloating(source)) continue;
            linearSources.Add(source.Name);
            bool storedOutIn = flipped ^ (gemm && node.Int("transB", 0) != 0);
            int outDim = (int)(storedOutIn ? source.Dims[0] : source.Dims[1]), inDim = (int)(storedOutIn ? source.Dims[1] : source.Dims[0]);
            string? bias = null;
            if (gemm && node.Inputs.Length > 2 && g.Const(node.Inputs[2]) is { } c) bias = c.Name;
            else if (!gemm)
            {
                foreach (var add in g.Uses(node.Outputs[0]))
                {
                    if (add.OpType != "Add" || add.Inputs.Length != 2) continue;
                    var other = add.Inputs[0] == node.Outputs[0] ? add.Inputs[1] : add.Inputs[0];
                    if (g.Const(other) is { Dims.Length: 1 } b && b.Dims[0] == outDim) bias = b.Name;
                }
            }
            string? name = bias != null && bias.EndsWith(".bias", StringComparison.Ordinal) ? bias[..^".bias".Length] + ".weight"
                : source.Name.EndsWith(".weight", StringComparison.Ordinal) && IsModuleName(source.Name) ? source.Name : null;
            if (name is null)
            {
                g.UnnamedMatMuls.Add($"{node.Label} ({source.Name}, {source.Describe()})");
                continue;
            }
            Put(name, new Weight(source, !storedOutIn, [outDim, inDim]), "through the graph");
            g.LinearNode[name] = node;
        }
        foreach (var t in model.Initializers)
        {
            if (linearSources.Contains(t.Name) || !IsModuleName(t.Name) || !OnnxModel.IsFloating(t)) continue;
            Put(t.Name, new Weight(t, false, t.Shape), "by name");
        }
        var ignored = result.Keys.Where(n => !InEncoder(n)).Order(StringComparer.Ordinal).ToList();
        foreach (var n in ignored) result.Remove(n);
        int graphNamed = result.Count(kv => kv.Key != kv.Value.Source.Name);
        if (result.Count == 0) throw new CheckpointFormatException($"{model.Path}: no BERT encoder weights (embeddings.*, encoder.layer.*) found among {model.Initializers.Count} initializers");
        return (result, graphNamed, ignored);
    }

    // An initializer (or Constant) used as a weight, directly (flipped false) or through a 2-D Transpose (flipped true).
    static (OnnxTensor Source, bool Flipped)? WeightInput(Graph g, string input)
    {
        if (g.Const(input) is { } direct) return (direct, false);
        if (g.Producer.TryGetValue(input, out var p) && p.OpType == "Transpose" && p.Inputs.Length == 1 && g.Const(p.Inputs[0]) is { } t
            && (!p.Attributes.TryGetValue("perm", out var perm) || perm.Ints is [1, 0]))
            return (t, true);
        return null;
    }

    /// <summary>
    /// Copies the tokenizer files found beside the ONNX file (or its config.json, or in the parent of an
    /// "onnx" folder) and a sentence-transformers pipeline, rewritten for the flat layout written here.
    /// </summary>
    static List<string> CopySideFiles(string onnxPath, string? configSource, string outDir)
    {
        var copied = new List<string>();
        var dirs = new List<string>();
        void Dir(string? d)
        {
            if (d != null && Directory.Exists(d) && !dirs.Contains(d)) dirs.Add(d);
        }
        var onnxDir = Path.GetDirectoryName(Path.GetFullPath(onnxPath))!;
        Dir(onnxDir);
        if (configSource != null) Dir(Path.GetDirectoryName(Path.GetFullPath(configSource)));
        if (Path.GetFileName(onnxDir) == "onnx") Dir(Path.GetDirectoryName(onnxDir));
        foreach (var name in s_tokenizerFiles)
        {
            var from = dirs.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
            if (from is null) continue;
            File.Copy(from, Path.Combine(outDir, name));
            copied.Add(name);
        }
        foreach (var d in dirs)
        {
            if (SentenceTransformersConfig.Read(d) is not { } st) continue;
            var modules = new JsonArray
            {
                Module(0, "", SentenceTransformersConfig.TransformerType),
                Module(1, "1_Pooling", SentenceTransformersConfig.PoolingType),
            };
            Directory.CreateDirectory(Path.Combine(outDir, "1_Pooling"));
            File.Copy(st.PoolingConfigPath, Path.Combine(outDir, "1_Pooling", "config.json"));
            if (st.Normalize)
            {
                modules.Add(Module(2, "2_Normalize", SentenceTransformersConfig.NormalizeType));
                Directory.CreateDirectory(Path.Combine(outDir, "2_Normalize"));
            }
            AtomicFile.WriteAllText(Path.Combine(outDir, SentenceTransformersConfig.ModulesJson), modules.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            copied.Add(SentenceTransformersConfig.ModulesJson);
            copied.Add("1_Pooling/config.json");
            var sbert = Path.Combine(st.TransformerDirectory, SentenceTransformersConfig.SentenceBertConfigJson);
            if (File.Exists(sbert))
            {
                File.Copy(sbert, Path.Combine(outDir, SentenceTransformersConfig.SentenceBertConfigJson));
                copied.Add(SentenceTransformersConfig.SentenceBertConfigJson);
            }
            break;
        }
        return copied;
    }

    static JsonObject Module(int idx, string path, string type) => new() { ["idx"] = idx, ["name"] = idx.ToString(CultureInfo.InvariantCulture), ["path"] = path, ["type"] = type };
}

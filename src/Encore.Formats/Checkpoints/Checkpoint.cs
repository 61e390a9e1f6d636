using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Models;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Formats.Checkpoints;

/// <summary>How to load a checkpoint's weights.</summary>
public sealed record CheckpointLoadOptions
{
    /// <summary>
    /// Keep weights in their stored dtype as zero-copy views of the mapped file (inference), instead of
    /// converting them to writable F32 copies (training). Default false.
    /// </summary>
    public bool MapWeights { get; init; }
}

/// <summary>
/// A Hugging Face–style checkpoint directory: <c>config.json</c> (its <c>model_type</c> picks the
/// <see cref="IArchitecture"/>), <c>model.safetensors</c> or shards with an index, and tokenizer files.
/// </summary>
public static class Checkpoint
{
    /// <summary>Largest config.json read.</summary>
    const long MaxConfigBytes = 4 << 20;

    /// <summary>Reads and maps the configuration in <paramref name="dir"/>.</summary>
    public static (ModelConfig Config, IArchitecture Architecture) ReadConfig(string dir)
    {
        var path = Path.Combine(dir, "config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{dir}: no config.json (is this a checkpoint directory?)", path);
        var size = new FileInfo(path).Length;
        if (size > MaxConfigBytes) throw new CheckpointFormatException($"{path}: {size} bytes is too large for a config.json");
        JsonObject json;
        try
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length > MaxConfigBytes) throw new CheckpointFormatException($"{path}: grew past {MaxConfigBytes} bytes while being read");
            JsonText.Check(bytes, path, maxDepth: 32);
            // A key given twice is refused: which one wins differs between readers.
            json = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 32, AllowDuplicateProperties = false }) as JsonObject
                ?? throw new CheckpointFormatException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: not valid JSON ({e.Message})", e);
        }
        string type = json["model_type"] is JsonValue v && v.TryGetValue(out string? s) ? s : throw new CheckpointFormatException($"{path}: no string 'model_type'");
        var arch = Architectures.Get(type, path);
        return (arch.ReadConfig(json, path), arch);
    }

    /// <summary>
    /// Loads the model in <paramref name="dir"/>, reading every parameter under its published name. An
    /// encoder-only checkpoint that stores none of the masked-LM head's tensors (a bare BertModel, a
    /// sentence-transformers encoder) loads without the head (<see cref="ModelConfig.MaskedLmHead"/> false);
    /// one that stores part of it fails naming the missing tensor.
    /// </summary>
    public static LanguageModel Load(string dir, CheckpointLoadOptions? options = null)
    {
        options ??= new CheckpointLoadOptions();
        var (config, arch) = ReadConfig(dir);
        using var weights = SafetensorsCheckpoint.Open(dir);
        if (config.Family == ModelFamily.EncoderOnly && config.MaskedLmHead && !StoresAnyOf(weights, arch, config, EncoderOnlyModel.MaskedLmHeadParameters))
            config = config with { MaskedLmHead = false };
        LanguageModel model;
        try
        {
            model = LanguageModel.CreateForLoading(config);
        }
        catch (ArgumentException e)
        {
            // The configuration is valid but too large for this machine: name the file it came from.
            throw new CheckpointFormatException($"{Path.Combine(dir, "config.json")}: {e.Message}", e);
        }
        try
        {
            foreach (var p in model.Parameters.All.ToArray())
            {
                var names = arch.TensorNames(p.Name, config);
                if (names.Count == 0) continue;
                var found = names.FirstOrDefault(weights.Contains)
                    ?? throw new CheckpointFormatException($"{dir}: the checkpoint has no tensor for parameter '{p.Name}' (looked for {string.Join(", ", names)})");
                var t = weights.Read(found);
                if (!t.Shape.SequenceEqual(p.Value.Shape))
                {
                    var got = t.Describe();
                    t.Dispose();
                    throw new CheckpointFormatException($"{dir}: tensor '{found}' is {got}, but the configuration needs {p.Value.Describe()}");
                }
                if (options.MapWeights && t.DType != DType.I32 && model.Parameters.MayStayCompact(p.Name))
                {
                    model.Parameters.Assign(p.Name, t);
                }
                else
                {
                    using (t)
                    {
                        var f32 = t.DType == DType.F32 ? t.Clone() : t.To(DType.F32);
                        model.Parameters.Assign(p.Name, f32);
                    }
                }
            }
            // Parameters the architecture does not store (none today, but a family may derive some).
            model.Parameters.InitializeRemaining();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    // True when the checkpoint holds a tensor for any of the Encore parameters named (those the
    // architecture stores at all; a tied head, for one, is not stored).
    static bool StoresAnyOf(SafetensorsCheckpoint weights, IArchitecture arch, ModelConfig config, IEnumerable<string> parameters)
    {
        foreach (var p in parameters)
        {
            IReadOnlyList<string> names;
            try
            {
                names = arch.TensorNames(p, config);
            }
            catch (ArgumentException)
            {
                continue;   // a parameter this configuration does not have (an untied head of a tied model)
            }
            if (names.Any(weights.Contains)) return true;
        }
        return false;
    }

    /// <summary>
    /// Copies the weights saved in <paramref name="dir"/> into the existing parameters of
    /// <paramref name="model"/> (keeping the parameter objects, so an optimizer built on them stays
    /// valid): how a training run resumes. The configuration must match.
    /// </summary>
    public static void LoadInto(LanguageModel model, string dir)
    {
        var (config, arch) = ReadConfig(dir);
        if (config != model.Config) throw new CheckpointFormatException($"{dir}: its configuration differs from the model being trained");
        using var weights = SafetensorsCheckpoint.Open(dir);
        foreach (var p in model.Parameters.All)
        {
            var names = arch.TensorNames(p.Name, config);
            if (names.Count == 0) continue;
            var found = names.FirstOrDefault(weights.Contains)
                ?? throw new CheckpointFormatException($"{dir}: the checkpoint has no tensor for parameter '{p.Name}'");
            using var t = weights.Read(found);
            if (!t.Shape.SequenceEqual(p.Value.Shape))
                throw new CheckpointFormatException($"{dir}: tensor '{found}' is {t.Describe()}, but the model has {p.Value.Describe()}");
            using var f32 = t.DType == DType.F32 ? t.Clone() : t.To(DType.F32);
            f32.AsReadOnlySpan<float>().CopyTo(p.Value.AsSpan<float>());
        }
    }

    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="dir"/> as <paramref name="modelType"/> (default:
    /// Encore's own): config.json and model.safetensors, each atomically, weights in
    /// <paramref name="dtype"/> (F32, BF16, F16, or the block-quantized Q8_0 and Q4_0). Quantized
    /// checkpoints quantize the weight matrices (<see cref="ParameterSet.MayStayCompact"/>) whose rows are
    /// whole blocks of 32 and keep every other tensor (norms, biases, position tables) in F32; they load
    /// memory-mapped as they are.
    /// </summary>
    public static void Save(LanguageModel model, string dir, string modelType = ModelConfigJson.ModelType, DType dtype = DType.F32)
    {
        if (dtype is not (DType.F32 or DType.BF16 or DType.F16 or DType.Q8_0 or DType.Q4_0))
            throw new ArgumentException($"checkpoints hold f32, bf16, f16, q8_0 or q4_0 weights, not {dtype.Name()}");
        var arch = Architectures.Get(modelType, dir);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        try
        {
            foreach (var p in model.Parameters.All)
            {
                var names = arch.TensorNames(p.Name, model.Config);
                if (names.Count == 0) continue;
                var type = dtype;
                if (dtype.IsBlocked() && !(model.Parameters.MayStayCompact(p.Name) && p.Value.Shape[^1] % dtype.BlockSize() == 0))
                    type = DType.F32;
                tensors.Add(new(names[0], p.Value.DType == type ? p.Value.Clone() : p.Value.To(type)));
            }
            Directory.CreateDirectory(dir);
            SafetensorsCheckpoint.Write(dir, tensors);
            var config = arch.WriteConfig(model.Config);
            AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        finally
        {
            foreach (var t in tensors) t.Value.Dispose();
        }
    }
}

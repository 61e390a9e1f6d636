using System.Text.Json.Nodes;
using Encore.Models;

namespace Encore.Formats.Checkpoints;

/// <summary>
/// How one Hugging Face <c>model_type</c> maps onto Encore's model: its <c>config.json</c> fields to a
/// <see cref="ModelConfig"/> and back, and Encore's parameter names to the published tensor names.
/// Adding a model type means adding one of these.
/// </summary>
public interface IArchitecture
{
    /// <summary>The <c>model_type</c> it reads and writes, e.g. "t5".</summary>
    string ModelType { get; }

    /// <summary>The Encore configuration of a parsed config.json; errors name <paramref name="path"/> and the field.</summary>
    ModelConfig ReadConfig(JsonObject json, string path);

    /// <summary>The config.json of <paramref name="config"/> in this model type's fields.</summary>
    JsonObject WriteConfig(ModelConfig config);

    /// <summary>
    /// Names under which the checkpoint may store Encore parameter <paramref name="encoreName"/>, the
    /// one to write first. Empty when the parameter is not stored (e.g. derived from another).
    /// </summary>
    IReadOnlyList<string> TensorNames(string encoreName, ModelConfig config);
}

/// <summary>
/// Every known model type: one registration line per family, each defined top to bottom in its own
/// file under Families/ (Mu.cs, T5.cs, Llama.cs with Qwen2, Bert.cs, Bart.cs with mBART, Marian.cs, Gemma2.cs, T5Gemma.cs).
/// </summary>
public static class Architectures
{
    static readonly Dictionary<string, IArchitecture> s_all = new(StringComparer.Ordinal)
    {
        [ModelConfigJson.ModelType] = new EncoreArchitecture(),
        ["t5"] = new T5Architecture(),
        ["llama"] = new LlamaArchitecture(),
        ["qwen2"] = new Qwen2Architecture(),
        ["bert"] = new BertArchitecture(),
        ["bart"] = new BartArchitecture(),
        ["mbart"] = new MBartArchitecture(),
        ["marian"] = new MarianArchitecture(),
        ["gemma2"] = new Gemma2Architecture(),
        ["t5gemma"] = new T5GemmaArchitecture(),
    };

    /// <summary>Registered model types.</summary>
    public static IEnumerable<string> ModelTypes => s_all.Keys;

    /// <summary>Adds (or replaces) the mapping of a model type.</summary>
    public static void Register(IArchitecture architecture) => s_all[architecture.ModelType] = architecture;

    /// <summary>The mapping of <paramref name="modelType"/>, or a clear error listing the known ones.</summary>
    public static IArchitecture Get(string modelType, string path) => s_all.TryGetValue(modelType, out var a) ? a
        : throw new CheckpointFormatException($"{path}: model_type '{modelType}' is not supported (supported: {string.Join(", ", s_all.Keys)})");
}

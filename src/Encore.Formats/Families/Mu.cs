// Encore's own family ("model_type": "encore"): Mu, the encoder–decoder of "Return of the Encoder"
// (arXiv 2501.16273, §3), its decoder-only twin, and any other combination the shared layers
// express. The config.json is the ModelConfig record itself (ModelConfigJson) and the checkpoint
// stores every parameter under its Encore name, so there is nothing to map.
//
// Where the parts live. This file sits in Encore.Formats, not Encore.Models, because a family's HF
// mapping reads config.json into CheckpointFormatException errors and implements IArchitecture, both
// Formats types, and Formats is the layer above Models (DESIGN.md). The presets (mu-330m, mu-25m,
// decoder-*, tiny-*) are in Models/Presets.cs, below, so that Models and its tests build them without
// Formats; the layers they run on are the shared ones (Models/Layers.cs, Models/Stack.cs): RoPE with
// centered encoder positions (PositionConfig.RopeCentered), a narrow GQA attention (H·hd < D),
// tanh-GELU, RMSNorm, tied embeddings without rescale.
using System.Text.Json.Nodes;
using Encore.Models;

namespace Encore.Formats.Checkpoints;

/// <summary>Encore's own format: the config record as it is, parameters under their own names.</summary>
public sealed class EncoreArchitecture : IArchitecture
{
    /// <inheritdoc />
    public string ModelType => ModelConfigJson.ModelType;

    /// <inheritdoc />
    public ModelConfig ReadConfig(JsonObject json, string path)
    {
        try
        {
            return ModelConfigJson.Deserialize(json.ToJsonString(), path);
        }
        catch (FormatException e)
        {
            throw new CheckpointFormatException(e.Message, e);
        }
    }

    /// <inheritdoc />
    public JsonObject WriteConfig(ModelConfig config) => JsonNode.Parse(ModelConfigJson.Serialize(config))!.AsObject();

    /// <inheritdoc />
    public IReadOnlyList<string> TensorNames(string encoreName, ModelConfig config) => [encoreName];
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace Encore.Models;

/// <summary>
/// Encore's own <c>config.json</c>: the <see cref="ModelConfig"/> record in snake_case with
/// <c>"model_type": "encore"</c>. Unknown keys are errors (a typo must not silently fall back to a default).
/// </summary>
public static class ModelConfigJson
{
    /// <summary>The model_type value of Encore's own architectures.</summary>
    public const string ModelType = "encore";

    /// <summary>The serializer settings (snake_case, enums as names).</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        MaxDepth = 16,
    };

    /// <summary>The JSON text of <paramref name="config"/>, with model_type first.</summary>
    public static string Serialize(ModelConfig config)
    {
        var node = JsonSerializer.SerializeToNode(config, Options)!.AsObject();
        var result = new System.Text.Json.Nodes.JsonObject { ["model_type"] = ModelType };
        foreach (var (k, v) in node.ToList())
        {
            node.Remove(k);
            result[k] = v;
        }
        return result.ToJsonString(Options);
    }

    /// <summary>Parses Encore's config.json text; <paramref name="source"/> names the file in errors.</summary>
    public static ModelConfig Deserialize(string json, string source = "config.json")
    {
        try
        {
            var node = System.Text.Json.Nodes.JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false })?.AsObject()
                ?? throw new FormatException($"{source}: not a JSON object");
            var type = node["model_type"]?.GetValue<string>();
            if (type != ModelType) throw new FormatException($"{source}: model_type is '{type}', expected '{ModelType}'");
            node.Remove("model_type");
            var config = node.Deserialize<ModelConfig>(Options) ?? throw new FormatException($"{source}: empty configuration");
            return config.Validate();
        }
        catch (JsonException e)
        {
            throw new FormatException($"{source}: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            throw new FormatException($"{source}: {e.Message}", e);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"{source}: {e.Message}", e);
        }
    }
}

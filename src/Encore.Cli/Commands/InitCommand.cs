using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Cli.Commands;

/// <summary><c>encore init</c>: writes a randomly initialized checkpoint of a preset or config file.</summary>
internal static class InitCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config", "--model", "-m") { Description = $"A preset ({string.Join(", ", Presets.All.Keys)}) or an Encore config.json.", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write (config.json + model.safetensors).", Required = true };
        var seed = new Option<ulong>("--seed") { Description = "Initialization seed.", DefaultValueFactory = _ => 0UL };
        var dtype = new Option<string>("--dtype") { Description = "Weight dtype: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a sentence." };
        var cmd = new Command("init", "Write a randomly initialized checkpoint (for benchmarks, tests, or as a training start).") { config, output, seed, dtype, json };
        cmd.SetAction(parse =>
        {
            var c = ResolveConfig(parse.GetValue(config)!);
            using var m = LanguageModel.Create(c, parse.GetValue(seed));
            var type = DTypes.Parse(parse.GetValue(dtype)!);
            string dir = parse.GetValue(output)!;
            Checkpoint.Save(m, dir, dtype: type);
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    output = dir, config = parse.GetValue(config), family = c.Family.ToString(), parameters = m.ParameterCount,
                    dtype = type.Name(), seed = parse.GetValue(seed),
                }, Common.Json));
            else Console.WriteLine($"wrote {dir}: {c.Family}, {m.ParameterCount / 1e6:0.0}M parameters");
            return 0;
        });
        return cmd;
    }

    /// <summary><c>encore config</c>: prints (or writes) the config.json of a preset.</summary>
    public static Command CreateConfig()
    {
        var preset = new Option<string>("--preset", "--model", "-m") { Description = $"A preset: {string.Join(", ", Presets.All.Keys)}.", Required = true };
        var output = new Option<string?>("--out") { Description = "Write to this file (atomically) instead of standard output." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object, {\"preset\", \"output\", \"config\"}, instead of the bare config (or, with --out, nothing)." };
        var cmd = new Command("config", "Print the config.json of a preset, to edit and pass to init, train or distill.") { preset, output, json };
        cmd.SetAction(parse =>
        {
            string name = parse.GetValue(preset)!, text = ModelConfigJson.Serialize(Presets.Get(name)) + "\n";
            string? path = parse.GetValue(output);
            if (path != null) Encore.Formats.AtomicFile.WriteAllText(path, text);
            if (parse.GetValue(json))
                Console.WriteLine(new JsonObject { ["preset"] = name, ["output"] = path, ["config"] = JsonNode.Parse(text) }.ToJsonString(Common.Json));
            else if (path is null) Console.Write(text);
            return 0;
        });
        return cmd;
    }

    /// <summary>A preset name, or the path of an Encore config.json.</summary>
    public static ModelConfig ResolveConfig(string value)
    {
        if (Presets.All.TryGetValue(value, out var preset)) return preset;
        if (File.Exists(value))
        {
            try
            {
                return ModelConfigJson.Deserialize(File.ReadAllText(value), value);
            }
            catch (FormatException e)
            {
                throw new ArgumentException(e.Message, e);
            }
        }
        throw new ArgumentException($"'{value}' is neither a preset ({string.Join(", ", Presets.All.Keys)}) nor a config file");
    }
}

using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Cli.Commands;

/// <summary><c>encore init</c>: writes a randomly initialized checkpoint of a preset or config file.</summary>
internal static class InitCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = $"A preset ({string.Join(", ", Presets.All.Keys)}) or an Encore config.json.", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write (config.json + model.safetensors).", Required = true };
        var seed = new Option<ulong>("--seed") { Description = "Initialization seed.", DefaultValueFactory = _ => 0UL };
        var dtype = new Option<string>("--dtype") { Description = "Weight dtype: f32, bf16 or f16.", DefaultValueFactory = _ => "f32" };
        var cmd = new Command("init", "Write a randomly initialized checkpoint (for benchmarks, tests, or as a training start).") { config, output, seed, dtype };
        cmd.SetAction(parse =>
        {
            var c = ResolveConfig(parse.GetValue(config)!);
            using var m = LanguageModel.Create(c, parse.GetValue(seed));
            Checkpoint.Save(m, parse.GetValue(output)!, dtype: DTypes.Parse(parse.GetValue(dtype)!));
            Console.WriteLine($"wrote {parse.GetValue(output)}: {c.Family}, {m.ParameterCount / 1e6:0.0}M parameters");
            return 0;
        });
        return cmd;
    }

    /// <summary><c>encore config</c>: prints (or writes) the config.json of a preset.</summary>
    public static Command CreateConfig()
    {
        var preset = new Option<string>("--preset") { Description = $"A preset: {string.Join(", ", Presets.All.Keys)}.", Required = true };
        var output = new Option<string?>("--out") { Description = "Write to this file (atomically) instead of standard output." };
        var cmd = new Command("config", "Print the config.json of a preset, to edit and pass to init, train or distill.") { preset, output };
        cmd.SetAction(parse =>
        {
            var json = ModelConfigJson.Serialize(Presets.Get(parse.GetValue(preset)!)) + "\n";
            if (parse.GetValue(output) is { } path) Encore.Formats.AtomicFile.WriteAllText(path, json);
            else Console.Write(json);
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

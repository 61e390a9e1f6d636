using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Formats.Tokenization;

namespace Encore.Cli.Commands;

/// <summary><c>encore convert</c>: writes a checkpoint in another format (today: llama.cpp's GGUF).</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Checkpoint directory (config.json, model.safetensors, tokenizer files).", Required = true };
        var to = new Option<string>("--to") { Description = "Target format: gguf.", Required = true };
        var output = new Option<string>("--out") { Description = "File to write (written to a temporary name, then renamed).", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Type of the weight matrices: f32, f16, q8_0 or q4_0. Norms stay f32.", DefaultValueFactory = _ => "f32" };
        var name = new Option<string?>("--name") { Description = "general.name written to the file (default: the directory name)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a sentence." };
        var cmd = new Command("convert", "Write a checkpoint as llama.cpp GGUF (T5-architecture encoder–decoders as \"t5\", Llama-architecture decoders as \"llama\").")
        {
            model, to, output, dtype, name, json,
        };
        cmd.SetAction(parse =>
        {
            if (!string.Equals(parse.GetValue(to), "gguf", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"--to '{parse.GetValue(to)}' is not supported (supported: gguf)");
            var matrices = parse.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "f32" => GgmlType.F32,
                "f16" => GgmlType.F16,
                "q8_0" or "q8" => GgmlType.Q8_0,
                "q4_0" or "q4" => GgmlType.Q4_0,
                var d => throw new ArgumentException($"--dtype '{d}' is not one of f32, f16, q8_0, q4_0"),
            };
            string dir = parse.GetValue(model)!, path = parse.GetValue(output)!;
            var (config, _) = Checkpoint.ReadConfig(dir);
            // Fails before the weights are read when llama.cpp cannot run the model.
            string arch = GgufExport.ArchitectureOf(config);
            TextTokenizer? tokenizer = null;
            try
            {
                tokenizer = TokenizerLoader.FromDirectory(dir);
            }
            catch (FileNotFoundException)
            {
                Console.Error.WriteLine($"encore convert: {dir} has no tokenizer files; writing a placeholder vocabulary of {config.VocabSize} tokens (ids run, text does not)");
            }
            using var m = Checkpoint.Load(dir);
            GgufExport.Write(m, tokenizer, path, new GgufExportOptions
            {
                Matrices = matrices,
                Name = parse.GetValue(name) ?? new DirectoryInfo(dir).Name,
                TokenizerDirectory = dir,
            });
            long bytes = new FileInfo(path).Length;
            if (parse.GetValue(json))
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
                {
                    model = dir, output = path, format = "gguf", architecture = arch, parameters = m.ParameterCount,
                    dtype = parse.GetValue(dtype)!.ToLowerInvariant(), bytes, placeholder_vocabulary = tokenizer is null,
                }, Common.Json));
            else Console.WriteLine($"wrote {path}: GGUF '{arch}', {m.ParameterCount:N0} parameters, {parse.GetValue(dtype)} matrices, {bytes:N0} bytes");
            return 0;
        });
        return cmd;
    }
}

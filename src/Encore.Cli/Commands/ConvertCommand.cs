using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Formats.Onnx;
using Encore.Formats.Tokenization;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore convert</c>: writes a checkpoint in another format (<c>--to gguf</c>: llama.cpp's GGUF), or
/// imports one written in another (<c>--from onnx</c>: the weights of a BERT encoder exported to ONNX,
/// into a checkpoint directory; see <see cref="OnnxBertImport"/>).
/// </summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Checkpoint directory (config.json, model.safetensors, tokenizer files) or Hugging Face model id org/name[@revision] (docs/hub.md); with --from onnx, the .onnx file.", Required = true };
        var to = new Option<string?>("--to") { Description = "Target format: gguf." };
        var from = new Option<string?>("--from") { Description = "Source format: onnx (a BERT encoder as torch.onnx.export writes it; --out is then the checkpoint directory to create)." };
        var output = new Option<string>("--out") { Description = "File to write (--to), or directory to create (--from); written under a temporary name, then renamed.", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Type of the weight matrices: f32, f16, q8_0 or q4_0. Norms stay f32.", DefaultValueFactory = _ => "f32" };
        var name = new Option<string?>("--name") { Description = "general.name written to the file (default: the directory name)." };
        var config = new Option<string?>("--config") { Description = "With --from onnx: the model's Hugging Face config.json (default: the one beside the .onnx file or in its parent folder, else inferred from the graph)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a sentence." };
        var cmd = new Command("convert", "Write a checkpoint as llama.cpp GGUF (T5-architecture encoder–decoders as \"t5\", Llama-architecture decoders as \"llama\"), or import a BERT encoder from ONNX.")
        {
            model, to, from, output, dtype, name, config, json,
        };
        cmd.SetAction(parse =>
        {
            string? target = parse.GetValue(to), source = parse.GetValue(from);
            if ((target is null) == (source is null)) throw new ArgumentException("give --to gguf (export) or --from onnx (import)");
            if (source != null) return ImportOnnx(parse, source, model, output, config, json);
            if (parse.GetValue(config) != null) throw new ArgumentException("--config is read by --from onnx only");
            if (!string.Equals(target, "gguf", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"--to '{target}' is not supported (supported: gguf)");
            var matrices = parse.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "f32" => GgmlType.F32,
                "f16" => GgmlType.F16,
                "q8_0" or "q8" => GgmlType.Q8_0,
                "q4_0" or "q4" => GgmlType.Q4_0,
                var d => throw new ArgumentException($"--dtype '{d}' is not one of f32, f16, q8_0, q4_0"),
            };
            string dir = Common.ModelPath(parse.GetValue(model)!, parse.GetValue(json)), path = parse.GetValue(output)!;
            var (modelConfig, _) = Checkpoint.ReadConfig(dir);
            // Fails before the weights are read when llama.cpp cannot run the model.
            string arch = GgufExport.ArchitectureOf(modelConfig);
            TextTokenizer? tokenizer = null;
            try
            {
                tokenizer = TokenizerLoader.FromDirectory(dir);
            }
            catch (FileNotFoundException)
            {
                Console.Error.WriteLine($"encore convert: {dir} has no tokenizer files; writing a placeholder vocabulary of {modelConfig.VocabSize} tokens (ids run, text does not)");
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

    static int ImportOnnx(ParseResult parse, string source, Option<string> model, Option<string> output, Option<string?> config, Option<bool> json)
    {
        if (!string.Equals(source, "onnx", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--from '{source}' is not supported (supported: onnx)");
        string file = parse.GetValue(model)!, dir = parse.GetValue(output)!;
        if (Directory.Exists(file)) throw new ArgumentException($"--model {file} is a directory; --from onnx reads the .onnx file (e.g. {Path.Combine(file, "model.onnx")})");
        var r = OnnxBertImport.Convert(file, dir, new OnnxImportOptions { ConfigPath = parse.GetValue(config) });
        var c = r.Config;
        if (parse.GetValue(json))
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
            {
                model = file, output = dir, format = "onnx", model_type = "bert", parameters = r.Parameters, config = r.ConfigSource,
                layers = c.EncoderLayers, hidden_size = c.DModel, heads = c.Heads, named_tensors = r.NamedTensors, graph_named_tensors = r.GraphNamedTensors,
                ignored = r.Ignored, copied = r.CopiedFiles,
            }, Common.Json));
        else
        {
            Console.WriteLine($"wrote {dir}: BERT encoder, {c.EncoderLayers} layers × {c.DModel} wide, {c.Heads} heads, {r.Parameters:N0} parameters "
                + $"({r.NamedTensors} tensors by name, {r.GraphNamedTensors} named through the graph; configuration from {r.ConfigSource})");
            if (r.Ignored.Count > 0) Console.WriteLine($"left out (not part of the encoder): {string.Join(", ", r.Ignored)}");
            if (r.CopiedFiles.Count > 0) Console.WriteLine($"copied: {string.Join(", ", r.CopiedFiles)}");
        }
        return 0;
    }
}

using System.Diagnostics;
using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Tensors;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore quantize</c>: writes a checkpoint whose weight matrices are stored in a smaller dtype
/// (Q8_0, Q4_0, or bf16/f16), with the tokenizer and generation files beside it; it loads
/// memory-mapped as stored, with no conversion at load.
/// </summary>
internal static class QuantizeCommand
{
    // Files a checkpoint carries besides its weights and config, copied as they are.
    static readonly string[] CompanionFiles =
    [
        TokenizerLoader.TokenizerJson, TokenizerLoader.TokenizerConfigJson, TokenizerLoader.SpecialTokensMapJson,
        TokenizerLoader.AddedTokensJson, TokenizerLoader.SpieceModel, TokenizerLoader.TokenizerModel,
        TokenizerLoader.VocabJson, TokenizerLoader.MergesTxt, TokenizerLoader.VocabTxt, ChatTemplateFiles.ChatTemplateJinja, "generation_config.json",
    ];

    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Checkpoint directory, a training run folder (its newest checkpoint), or a Hugging Face model id org/name[@revision] (fetched into the hub cache; docs/hub.md).", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Type of the weight matrices: q8_0, q4_0, bf16 or f16. Norms, biases and matrices whose rows are not whole blocks of 32 stay f32.", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write (must not exist or be empty).", Required = true };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a sentence." };
        var cmd = new Command("quantize", "Write a copy of a checkpoint with its weight matrices in q8_0, q4_0, bf16 or f16 (ggml's block layouts inside safetensors; loads memory-mapped, no conversion).")
        {
            model, dtype, output, json,
        };
        cmd.SetAction(parse =>
        {
            var target = Common.ParseWeightDType(parse.GetValue(dtype)!, "--dtype");
            if (target == DType.F32) throw new ArgumentException("--dtype f32 does not quantize; give q8_0, q4_0, bf16 or f16");
            string dir = CheckpointDirectory.Resolve(Common.ModelPath(parse.GetValue(model)!, parse.GetValue(json))), outDir = parse.GetValue(output)!;
            if (Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(outDir).TrimEnd(Path.DirectorySeparatorChar))
                throw new ArgumentException($"--out {outDir} is the checkpoint being read; write the quantized copy elsewhere");
            if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
                throw new ArgumentException($"--out {outDir} exists and is not empty");
            var clock = Stopwatch.StartNew();
            var (_, arch) = Checkpoint.ReadConfig(dir);
            using var m = Checkpoint.Load(dir, new CheckpointLoadOptions { MapWeights = true });
            Checkpoint.Save(m, outDir, arch.ModelType, target);
            foreach (var f in CompanionFiles)
            {
                var src = Path.Combine(dir, f);
                if (File.Exists(src)) File.Copy(src, Path.Combine(outDir, f), overwrite: false);
            }
            long inBytes = WeightBytes(dir), outBytes = WeightBytes(outDir);
            if (parse.GetValue(json))
            {
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
                {
                    model = dir, output = outDir, dtype = target.Name(), parameters = m.ParameterCount,
                    input_bytes = inBytes, output_bytes = outBytes, seconds = clock.Elapsed.TotalSeconds,
                }, Common.Json));
            }
            else
            {
                Console.WriteLine($"wrote {outDir}: {m.ParameterCount:N0} parameters, {target.Name()} matrices, weights {inBytes / 1048576.0:F1} MiB → {outBytes / 1048576.0:F1} MiB ({(double)inBytes / Math.Max(1, outBytes):F2}× smaller) in {clock.Elapsed.TotalSeconds:F1} s");
            }
            return 0;
        });
        return cmd;
    }

    static long WeightBytes(string dir)
        => Directory.EnumerateFiles(dir, "*.safetensors").Where(f => Path.GetFileName(f) != OptimizerCheckpoint.FileName).Sum(f => new FileInfo(f).Length);
}

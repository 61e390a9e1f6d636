using System.Diagnostics;
using Encore.Formats.Checkpoints;
using Encore.Tensors;

namespace Encore.Cli.Commands;

/// <summary><c>encore merge</c>: base + LoRA adapter → one plain checkpoint (see <see cref="LoraMerge"/>).</summary>
internal static class MergeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "The base checkpoint the adapter was trained on (or a training run folder, its newest checkpoint, or a Hugging Face model id org/name[@revision] (fetched into the hub cache; docs/hub.md)).", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "The LoRA adapter: a PEFT adapter directory, or the run folder of `encore train --lora-rank` (its newest checkpoint).", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write (must not exist or be empty); it appears complete or not at all.", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Type of the merged weight matrices: f32, bf16, f16, q8_0 or q4_0.", DefaultValueFactory = _ => "f32" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a sentence." };
        var cmd = new Command("merge", "Merge a LoRA adapter into its base model: a plain checkpoint whose adapted weights are W + (alpha/r)·B·A, served without the adapter.")
        {
            model, adapter, output, dtype, json,
        };
        cmd.SetAction(parse =>
        {
            var target = Common.ParseWeightDType(parse.GetValue(dtype)!, "--dtype");
            string baseDir = CheckpointDirectory.Resolve(Common.ModelPath(parse.GetValue(model)!, parse.GetValue(json)));
            string adapterDir = PeftAdapter.Resolve(Common.ModelPath(parse.GetValue(adapter)!, parse.GetValue(json)));
            var clock = Stopwatch.StartNew();
            var r = LoraMerge.Merge(baseDir, adapterDir, parse.GetValue(output)!, target);
            if (parse.GetValue(json))
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
                {
                    model = baseDir, adapter = adapterDir, output = r.Output, model_type = r.ModelType, layers = r.Layers, rank = r.Rank,
                    dtype = target.Name(), copied = r.Copied, seconds = clock.Elapsed.TotalSeconds,
                }, Common.Json));
            else
                Console.WriteLine($"wrote {r.Output}: {baseDir} + adapter {adapterDir} (rank {r.Rank} on {r.Layers} layers) merged, {r.ModelType} checkpoint with {target.Name()} weights{(r.Copied.Count > 0 ? $" and {string.Join(", ", r.Copied)}" : "")}, in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return cmd;
    }
}

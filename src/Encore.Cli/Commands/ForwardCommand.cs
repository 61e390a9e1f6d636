using Encore.Autograd;
using Encore.Formats;
using Encore.Formats.Checkpoints;
using Encore.Models;

namespace Encore.Cli.Commands;

/// <summary><c>encore forward</c>: one forward pass of a checkpoint on given ids, logits written as .npy (for parity checks).</summary>
internal static class ForwardCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Checkpoint directory (config.json + model.safetensors), or a Hugging Face model id org/name[@revision] (fetched into the hub cache; docs/hub.md).", Required = true };
        var inputIds = new Option<string>("--input-ids") { Description = "Comma-separated token ids: the encoder input (or the whole input of a decoder-only or encoder-only model).", Required = true };
        var decoderIds = new Option<string?>("--decoder-input-ids") { Description = "Comma-separated decoder input ids (encoder–decoder models; default: the decoder start token)." };
        var output = new Option<string>("--out") { Description = "Where to write the logits, float32 .npy of shape (1, T, V) (a bare encoder without a masked-LM head: its hidden states, (1, T, D)).", Required = true };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a sentence." };
        var cmd = new Command("forward", "Run one forward pass and write the logits as a NumPy .npy file.") { model, inputIds, decoderIds, output, json };
        cmd.SetAction(parse =>
        {
            using var m = Checkpoint.Load(Common.ModelPath(parse.GetValue(model)!, parse.GetValue(json)), new CheckpointLoadOptions { MapWeights = true });
            var ids = ParseIds(parse.GetValue(inputIds)!, "--input-ids", m.Config.VocabSize);
            Var logits = m switch
            {
                EncoderDecoderModel ed => ed.Forward(ids, null,
                    parse.GetValue(decoderIds) is { } d ? ParseIds(d, "--decoder-input-ids", m.Config.VocabSize) : [m.Config.DecoderStartTokenId], 1),
                DecoderOnlyModel dec => dec.Forward(ids, 1),
                // A bare encoder (no masked-LM head) has hidden states to show, (1, T, D).
                EncoderOnlyModel { HasMaskedLmHead: false } bare => bare.Forward(ids, 1),
                EncoderOnlyModel enc => enc.MaskedLmLogits(enc.Forward(ids, 1)),
                _ => throw new InvalidOperationException("unknown model family"),
            };
            using (logits)
            {
                Npy.Write(parse.GetValue(output)!, logits.Value);
                if (parse.GetValue(json))
                    Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
                    {
                        model = parse.GetValue(model), output = parse.GetValue(output), dtype = Encore.Tensors.DTypes.Name(logits.Value.DType), shape = logits.Value.Shape.ToArray(),
                    }, Common.Json));
                else Console.WriteLine($"wrote {parse.GetValue(output)}: {(m is EncoderOnlyModel { HasMaskedLmHead: false } ? "hidden states" : "logits")} {logits.Value.Describe()}");
            }
            return 0;
        });
        return cmd;
    }

    static int[] ParseIds(string text, string option, int vocab)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException($"{option} is empty");
        if (parts.Length > 1_000_000) throw new ArgumentException($"{option} has {parts.Length} ids; at most 1000000");
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], out ids[i]) || ids[i] < 0 || ids[i] >= vocab)
                throw new ArgumentException($"{option}: '{parts[i]}' (position {i}) is not a token id in [0, {vocab})");
        }
        return ids;
    }
}

using Encore.Formats.Checkpoints;
using Encore.Models;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore adapt</c>: builds an encoder–decoder checkpoint from a decoder-only one (T5Gemma's
/// adaptation; <see cref="CheckpointAdaptation"/>, <see cref="ModelAdaptation"/>).
/// </summary>
internal static class AdaptCommand
{
    public static Command Create()
    {
        var from = new Option<string>("--from", "--model", "-m") { Description = "Decoder-only checkpoint (Encore, llama, qwen2 or gemma2), training run folder or Hugging Face model id org/name[@revision]: its blocks become the encoder (and the decoder, unless --decoder-from).", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write (must not exist or be empty); written under a temporary name, then renamed.", Required = true };
        var encoderLayers = new Option<int?>("--encoder-layers") { Description = "Encoder blocks: the first N of --from (default: all)." };
        var decoderLayers = new Option<int?>("--decoder-layers") { Description = "Decoder blocks: the first M of the decoder's source (default: all)." };
        var decoderFrom = new Option<string?>("--decoder-from") { Description = "A smaller decoder-only checkpoint whose blocks become the decoder (unbalanced, as T5Gemma 9B-2B); same vocabulary, tokenizer and block options as --from; its widths may differ (the encoder keeps --from's)." };
        var cross = new Option<string>("--cross-attention") { Description = "auto, copy or fresh: copy from each block's self-attention, or start fresh; auto copies when balanced and starts fresh with --decoder-from.", DefaultValueFactory = _ => "auto" };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the parameters that start fresh.", DefaultValueFactory = _ => 0UL };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of sentences." };
        var cmd = new Command("adapt", "Build an encoder–decoder checkpoint from a decoder-only one: its blocks become a bidirectional encoder and the decoder, cross-attention copied from self-attention or fresh.")
        {
            from, output, encoderLayers, decoderLayers, decoderFrom, cross, seed, json,
        };
        cmd.SetAction(parse =>
        {
            var crossInit = parse.GetValue(cross)!.ToLowerInvariant() switch
            {
                "auto" => (CrossAttentionInit?)null,
                "copy" => CrossAttentionInit.Copy,
                "fresh" => CrossAttentionInit.Fresh,
                var other => throw new ArgumentException($"--cross-attention '{other}' is not one of auto, copy, fresh"),
            };
            var options = new AdaptationOptions
            {
                EncoderLayers = parse.GetValue(encoderLayers),
                DecoderLayers = parse.GetValue(decoderLayers),
                CrossAttention = crossInit,
                Seed = parse.GetValue(seed),
            };
            bool quiet = parse.GetValue(json);
            var r = CheckpointAdaptation.Write(Common.ModelPath(parse.GetValue(from)!, quiet), parse.GetValue(output)!,
                parse.GetValue(decoderFrom) is { } d ? Common.ModelPath(d, quiet) : null, options);
            var c = r.Report.Config;
            if (parse.GetValue(json))
            {
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
                {
                    output = r.OutputDirectory, source = r.Source, decoder_source = r.DecoderSource, unbalanced = r.Report.Unbalanced,
                    encoder_layers = c.EncoderLayers, decoder_layers = c.DecoderLayers, d_model = c.DModel, encoder_d_model = c.EncoderDModel, vocab_size = c.VocabSize,
                    cross_attention = r.Report.CrossAttention.ToString().ToLowerInvariant(), parameters = r.Parameters,
                    from_source = r.Report.FromSource, from_decoder_source = r.Report.FromDecoderSource,
                    from_self_attention = r.Report.FromSelfAttention, fresh = r.Report.Fresh.Count,
                    decoder_start_token_id = c.DecoderStartTokenId, copied = r.CopiedFiles,
                }, Common.Json));
                return 0;
            }
            Console.WriteLine($"wrote {r.OutputDirectory}: encoder–decoder of {c.EncoderLayers} encoder blocks from {r.Source} and {c.DecoderLayers} decoder blocks from {r.DecoderSource ?? r.Source}, " +
                $"{r.Parameters:N0} parameters, width {(c.EncoderDModel == c.DModel ? $"{c.DModel}" : $"{c.EncoderDModel} (encoder) / {c.DModel} (decoder)")}, {c.VocabSize} ids");
            Console.WriteLine(r.Report.CrossAttention == CrossAttentionInit.Copy
                ? $"cross-attention: copied from each decoder block's self-attention ({r.Report.FromSelfAttention} tensors)"
                : $"cross-attention: fresh ({r.Report.Fresh.Count} tensors, seed {options.Seed}); train it alone first: encore train --warmup-cross-attention-only STEPS");
            if (r.CopiedFiles.Count > 0) Console.WriteLine($"copied: {string.Join(", ", r.CopiedFiles)}");
            else Console.WriteLine($"{r.Source} has no tokenizer files; give training a --tokenizer");
            Console.WriteLine($"next: encore train -m {r.OutputDirectory} --data CORPUS --objective prefix-lm (or ul2)");
            return 0;
        });
        return cmd;
    }
}

// `encore bench peers`: the same random weights and prompts, greedy generation timed in Encore, in
// llama.cpp (through LLamaSharp, loading the GGUF that Encore's exporter writes) and in PyTorch eager
// with a KV cache (bench/peers/torch_generate.py reading the same safetensors). Greedy outputs are
// compared token by token: equal outputs show that the three engines time the same computation.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors;
using Encore.Tensors.Kernels;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Encore.Bench;

/// <summary>
/// llama.cpp through LLamaSharp's context API, greedy over the raw logits: for a T5 GGUF the prompt
/// goes through <c>llama_encode</c> and decoding starts from the decoder start token; for a Llama GGUF
/// the prompt is prefilled in one batch. Caches and KV are F32 so that F32 runs compute what Encore does.
/// </summary>
internal sealed class LlamaCppPeer : IDisposable
{
    static bool _logging;
    readonly LLamaWeights _weights;
    readonly LLamaContext _context;
    readonly LLamaBatch _batch = new();

    LlamaCppPeer(LLamaWeights weights, LLamaContext context)
    {
        _weights = weights;
        _context = context;
    }

    public static LlamaCppPeer Open(string gguf, int contextSize, int promptLength, int threads)
    {
        if (!_logging)
        {
            // llama.cpp logs every tensor it loads; keep errors only.
            NativeLibraryConfig.All.WithLogCallback((level, message) =>
            {
                if (level == LLamaLogLevel.Error) Console.Error.Write(message);
            });
            _logging = true;
        }
        var p = new ModelParams(gguf)
        {
            ContextSize = (uint)contextSize,
            BatchSize = (uint)Math.Max(promptLength, 32),
            UBatchSize = (uint)Math.Max(promptLength, 32),
            Threads = threads,
            BatchThreads = threads,
            GpuLayerCount = 0,
            TypeK = GGMLType.GGML_TYPE_F32,
            TypeV = GGMLType.GGML_TYPE_F32,
            FlashAttention = false,
        };
        var weights = LLamaWeights.LoadFromFile(p);
        try
        {
            return new LlamaCppPeer(weights, weights.CreateContext(p));
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    public (double First, double Rate, int[] Tokens) Generate(int[] prompt, int newTokens, int decoderStart, bool encoderDecoder)
    {
        var handle = _context.NativeHandle;
        handle.MemoryClear(true);
        var tokens = new int[newTokens];
        var sw = Stopwatch.StartNew();
        _batch.Clear();
        for (int i = 0; i < prompt.Length; i++) _batch.Add(prompt[i], i, LLamaSeqId.Zero, !encoderDecoder && i == prompt.Length - 1);
        int pos;
        if (encoderDecoder)
        {
            var enc = _context.Encode(_batch);
            if (enc != EncodeResult.Ok) throw new InvalidOperationException($"llama_encode failed: {enc}");
            Step(decoderStart, 0);
            pos = 1;
        }
        else
        {
            Check(_context.Decode(_batch));
            pos = prompt.Length;
        }
        tokens[0] = ArgMax(handle.GetLogitsIth(_batch.TokenCount - 1));
        double first = sw.Elapsed.TotalSeconds;
        for (int t = 1; t < newTokens; t++)
        {
            Step(tokens[t - 1], pos++);
            tokens[t] = ArgMax(handle.GetLogitsIth(0));
        }
        double total = sw.Elapsed.TotalSeconds;
        return (first, (newTokens - 1) / (total - first), tokens);
    }

    void Step(int token, int pos)
    {
        _batch.Clear();
        _batch.Add(token, pos, LLamaSeqId.Zero, true);
        Check(_context.Decode(_batch));
    }

    static void Check(DecodeResult r)
    {
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode failed: {r}");
    }

    // The first maximum, as Encore's Sampling.ArgMax and torch.argmax choose.
    static int ArgMax(Span<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}

// The llama.cpp peer of `encore bench peers`: greedy generation through LLamaSharp over the GGUF files
// Encore exports, loaded by Encore.Bench.GgufPeers as a plug-in.
using System.Diagnostics;
using LLama;
using LLama.Common;
using LLama.Exceptions;
using LLama.Native;

namespace Encore.Bench.LlamaCpp;

/// <summary>Opens <see cref="LlamaCppPeer"/>s; the plug-in's entry point.</summary>
public sealed class LlamaCppPeerFactory : IGgufPeerFactory
{
    /// <inheritdoc/>
    public string Engine => "llama.cpp";

    /// <inheritdoc/>
    public IGgufPeer Open(string gguf, int contextSize, int promptLength, int threads)
    {
        try
        {
            return LlamaCppPeer.Open(gguf, contextSize, promptLength, threads);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or RuntimeError or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new InvalidOperationException(e.GetBaseException().Message, e);
        }
    }
}

/// <summary>
/// llama.cpp through LLamaSharp's context API, greedy over the raw logits: for a T5 GGUF the prompt
/// goes through <c>llama_encode</c> and decoding starts from the decoder start token; for a Llama GGUF
/// the prompt is prefilled in one batch. Caches and KV are F32 so that F32 runs compute what Encore does.
/// </summary>
internal sealed class LlamaCppPeer : IGgufPeer
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
            // The native libraries sit under runtimes/ beside this plug-in, not beside the host.
            NativeLibraryConfig.All.WithSearchDirectory(Path.GetDirectoryName(typeof(LlamaCppPeer).Assembly.Location)!);
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

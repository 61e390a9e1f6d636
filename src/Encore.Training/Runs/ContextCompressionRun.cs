using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Encore.Autograd;
using Encore.Autograd.Optim;
using Encore.Formats;
using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Objectives;

namespace Encore.Training.Runs;

/// <summary>Settings of <see cref="ContextCompressionTraining"/>; each has one documented default.</summary>
public sealed record ContextCompressionOptions
{
    /// <summary>Optimizer steps. Default 1000.</summary>
    public int Steps { get; init; } = 1000;
    /// <summary>Chunks per step. Default 16.</summary>
    public int Batch { get; init; } = 16;
    /// <summary>Share of the steps that train reconstruction (the rest continuation). Default 0.2, the paper's.</summary>
    public double ReconstructionShare { get; init; } = 0.2;
    /// <summary>Peak learning rate of the encoder and the special embeddings. Default 3e-4.</summary>
    public double LearningRate { get; init; } = 3e-4;
    /// <summary>Peak learning rate of the projector (the paper's is 5× the encoder's). Default 1.5e-3.</summary>
    public double ProjectorLearningRate { get; init; } = 1.5e-3;
    /// <summary>Linear warm-up steps, then cosine decay to a tenth. Default 100.</summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>AdamW weight decay (the paper's 0.1). Default 0.1.</summary>
    public double WeightDecay { get; init; } = 0.1;
    /// <summary>Global gradient-norm clip. Default 1.0.</summary>
    public double ClipNorm { get; init; } = 1.0;
    /// <summary>Steps between progress reports. Default 50.</summary>
    public int LogEvery { get; init; } = 50;
    /// <summary>Steps between checkpoints (0: only at the end). Default 0.</summary>
    public int SaveEvery { get; init; }
    /// <summary>Seed of the task draws and the batch order. Default 0.</summary>
    public ulong Seed { get; init; }
}

/// <summary>What one logged stretch of training reports.</summary>
public sealed record CompressionStepReport(int Step, int Steps, double Loss, double ReconstructionLoss, double ContinuationLoss, double LearningRate, double GradientNorm, double Seconds);

/// <summary>
/// Trains a <see cref="ContextCompressor"/> against a frozen decoder-only model with ARC-Encoder's pretraining mixture
/// (arXiv 2510.20535): each step is a reconstruction batch with probability <see cref="ContextCompressionOptions.ReconstructionShare"/>,
/// else a continuation batch (<see cref="CompressionBatch"/>). The decoder's parameters are frozen (no gradient, never
/// updated); gradients flow through it into the compressed vectors. Two AdamW groups: encoder, token table and special
/// embeddings at one rate, the projector at its own (the paper's split).
/// </summary>
public sealed class ContextCompressionTraining : IDisposable
{
    readonly ContextCompressor _compressor;
    readonly DecoderOnlyModel _decoder;
    readonly ContextCompressionOptions _o;
    readonly AdamW _encoderOpt, _projectorOpt;
    readonly Parameter[] _trained;

    /// <summary>Sets up training; freezes every parameter of <paramref name="decoder"/>.</summary>
    public ContextCompressionTraining(ContextCompressor compressor, DecoderOnlyModel decoder, ContextCompressionOptions options)
    {
        _compressor = compressor ?? throw new ArgumentNullException(nameof(compressor));
        _decoder = decoder ?? throw new ArgumentNullException(nameof(decoder));
        _o = options ?? throw new ArgumentNullException(nameof(options));
        if (options.Steps < 1) throw new ArgumentException($"steps must be ≥ 1, got {options.Steps}");
        if (options.Batch < 1) throw new ArgumentException($"batch must be ≥ 1, got {options.Batch}");
        if (options.ReconstructionShare is < 0 or > 1) throw new ArgumentException($"the reconstruction share must be in [0, 1], got {options.ReconstructionShare}");
        if (compressor.Config.DecoderDModel != decoder.Config.DModel)
            throw new ArgumentException($"the compressor feeds width {compressor.Config.DecoderDModel}, the decoder reads {decoder.Config.DModel}");
        if (compressor.Config.Encoder.VocabSize != decoder.Config.VocabSize)
            throw new ArgumentException($"the compressor's vocabulary ({compressor.Config.Encoder.VocabSize}) differs from the decoder's ({decoder.Config.VocabSize})");
        // As the cross-attention warm-up and LoRA runs freeze: a frozen parameter's var needs no gradient, so backward
        // skips every dW of the decoder and computes only the input gradients that reach the compressed vectors.
        foreach (var p in decoder.Parameters.All)
        {
            p.Trainable = false;
            p.ZeroGrad();
        }
        _trained = compressor.Parameters.All.ToArray();
        var projector = _trained.Where(p => p.Name.StartsWith("projector.", StringComparison.Ordinal)).ToArray();
        _encoderOpt = new AdamW(_trained.Except(projector), new AdamWOptions { WeightDecay = options.WeightDecay });
        _projectorOpt = new AdamW(projector, new AdamWOptions { WeightDecay = options.WeightDecay });
    }

    /// <summary>Called after each logged stretch of steps.</summary>
    public Action<CompressionStepReport>? OnLog { get; set; }

    /// <summary>Called with the step number when a checkpoint is due (<see cref="ContextCompressionOptions.SaveEvery"/>, and the last step).</summary>
    public Action<int>? OnSave { get; set; }

    /// <summary>Optimizer steps taken.</summary>
    public int Step { get; private set; }

    /// <summary>The mean loss of one batch (a scalar var), on the current tape when one records.</summary>
    public static Var Loss(ContextCompressor compressor, DecoderOnlyModel decoder, CompressionBatch batch, ulong dropoutSeed = 0)
    {
        var compressed = compressor.Compress(batch.Compressed, batch.Batch, dropoutSeed);                   // (B, G, D)
        var input = compressor.DecoderInput(decoder, compressed, batch.Task, batch.DecoderTokens);           // (B, G + 1 + T, D)
        var logits = decoder.ForwardEmbeddings(input);                                                       // (B, G + 1 + T, V)
        return Ops.CrossEntropy(logits, batch.Labels, new CrossEntropyOptions { IgnoreIndex = Labels.Ignore });
    }

    /// <summary>Trains for the configured steps over <paramref name="chunks"/> (the training chunks of a <see cref="CompressionChunks"/>).</summary>
    public void Run(IReadOnlyList<int[]> chunks, int contextTokens)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        if (chunks.Count < _o.Batch) throw new ArgumentException($"{chunks.Count} training chunks are fewer than a batch of {_o.Batch}");
        int g = _compressor.CompressedLength(contextTokens);
        var schedule = new LrSchedule { Peak = 1, WarmupSteps = _o.WarmupSteps, TotalSteps = _o.Steps, Decay = LrDecay.Cosine, MinRatio = 0.1 };
        var order = Shuffled(chunks.Count, 0);
        int cursor = 0, epoch = 0;
        var rows = new int[_o.Batch][];
        double lossSum = 0, recSum = 0, contSum = 0, normSum = 0;
        int recN = 0, contN = 0, n = 0;
        var sw = Stopwatch.StartNew();
        while (Step < _o.Steps)
        {
            for (int i = 0; i < rows.Length; i++)
            {
                if (cursor == order.Length)
                {
                    order = Shuffled(chunks.Count, ++epoch);
                    cursor = 0;
                }
                rows[i] = chunks[order[cursor++]];
            }
            var rng = DataRng.For(_o.Seed ^ 0xC0111E55UL, (ulong)Step);
            var task = rng.NextDouble() < _o.ReconstructionShare ? CompressionTask.Reconstruction : CompressionTask.Continuation;
            var batch = CompressionBatch.Build(task, rows, contextTokens, g);
            double scale = schedule.At(Step + 1);
            _encoderOpt.LearningRate = _o.LearningRate * scale;
            _projectorOpt.LearningRate = _o.ProjectorLearningRate * scale;
            double loss;
            using (var tape = Tape.Record())
            {
                var l = Loss(_compressor, _decoder, batch, _o.Seed + (ulong)Step);
                loss = l.Value.AsReadOnlySpan<float>()[0];
                tape.Backward(l);
            }
            if (!double.IsFinite(loss)) throw new InvalidOperationException($"step {Step + 1}: the loss is {loss}");
            normSum += GradClip.ClipGlobalNorm(_trained, _o.ClipNorm);
            _encoderOpt.Update();
            _projectorOpt.Update();
            _encoderOpt.ZeroGrad();
            _projectorOpt.ZeroGrad();
            Step++;
            lossSum += loss;
            n++;
            if (task == CompressionTask.Reconstruction) { recSum += loss; recN++; }
            else { contSum += loss; contN++; }
            if (Step % Math.Max(1, _o.LogEvery) == 0 || Step == _o.Steps)
            {
                OnLog?.Invoke(new CompressionStepReport(Step, _o.Steps, lossSum / n, recN > 0 ? recSum / recN : double.NaN, contN > 0 ? contSum / contN : double.NaN,
                    _encoderOpt.LearningRate, normSum / n, sw.Elapsed.TotalSeconds));
                lossSum = recSum = contSum = normSum = 0;
                n = recN = contN = 0;
            }
            if ((_o.SaveEvery > 0 && Step % _o.SaveEvery == 0) || Step == _o.Steps) OnSave?.Invoke(Step);
        }
    }

    int[] Shuffled(int count, int epoch) => DataRng.For(_o.Seed, (ulong)epoch, 1).Permutation(count);

    /// <summary>Frees the optimizer state.</summary>
    public void Dispose()
    {
        _encoderOpt.Dispose();
        _projectorOpt.Dispose();
    }
}

/// <summary>What <see cref="ContextCompressionEval"/> measures on held-out chunks.</summary>
/// <param name="Chunks">Held-out chunks read.</param>
/// <param name="ContextTokens">Tokens compressed per chunk (n).</param>
/// <param name="ContinuationTokens">Tokens continued per chunk (m).</param>
/// <param name="CompressedVectors">Vectors the n tokens become (⌈n/PF⌉).</param>
/// <param name="ReconstructionAccuracy">Share of the n compressed tokens the decoder reproduces (teacher-forced argmax) after &lt;Rec&gt;.</param>
/// <param name="ReconstructionLoss">Mean cross-entropy (nats/token) of the reproduced tokens.</param>
/// <param name="CompressedLoss">Continuation loss after the compressed context and &lt;Cont&gt;.</param>
/// <param name="NoContextLoss">Continuation loss after BOS alone.</param>
/// <param name="FullContextLoss">Continuation loss after BOS and the n context tokens.</param>
/// <param name="FullPrefillMs">Median prefill time of BOS + n tokens (ms).</param>
/// <param name="CompressedPrefillMs">Median time to compress n tokens and prefill the vectors and &lt;Cont&gt; (ms).</param>
/// <param name="DecoderPrefillMs">Median prefill time of the compressed vectors and &lt;Cont&gt; alone, the encoder's time left out (ms).</param>
/// <param name="CopyAccuracy">
/// The decoder's own copying, the uncompressed reference for reconstruction: the share of the n tokens it predicts (teacher-forced
/// argmax) when it reads BOS, the n tokens, then the same n tokens again.
/// </param>
/// <param name="ReconstructionByPosition">Reconstruction accuracy at each of the n context positions (index 0: the first token).</param>
/// <param name="CopyByPosition">Copy accuracy at each of the n positions of the repeat (index 0: its first token, which nothing announces).</param>
public sealed record ContextCompressionReport(int Chunks, int ContextTokens, int ContinuationTokens, int CompressedVectors,
    double ReconstructionAccuracy, double ReconstructionLoss, double CompressedLoss, double NoContextLoss, double FullContextLoss,
    double FullPrefillMs, double CompressedPrefillMs, double DecoderPrefillMs, double CopyAccuracy,
    IReadOnlyList<double> ReconstructionByPosition, IReadOnlyList<double> CopyByPosition)
{
    /// <summary>(compressed − full) / full continuation loss: how far the compressed context is from the full text.</summary>
    public double GapToFull => (CompressedLoss - FullContextLoss) / FullContextLoss;
    /// <summary>Share of the no-context → full-context loss reduction the compressed context keeps.</summary>
    public double GainKept => (NoContextLoss - CompressedLoss) / (NoContextLoss - FullContextLoss);

    /// <summary>
    /// Reconstruction accuracy by place within the pooled groups (index 0: each group's first token), averaged over the
    /// groups <see cref="TransformerStack.PoolingGroups"/> cuts the n positions into at factor <paramref name="pooling"/>.
    /// </summary>
    public double[] ReconstructionBySlot(int pooling)
    {
        var sizes = TransformerStack.PoolingGroups(ContextTokens, pooling);
        var sum = new double[sizes.Max()];
        var count = new int[sum.Length];
        int position = 0;
        foreach (int size in sizes)
            for (int j = 0; j < size; j++, position++)
            {
                sum[j] += ReconstructionByPosition[position];
                count[j]++;
            }
        return sum.Select((x, j) => x / count[j]).ToArray();
    }

    /// <summary>Copy accuracy without the repeat's first token, which the decoder cannot know is a repeat.</summary>
    public double CopyAccuracyAfterFirst => CopyByPosition.Count > 1 ? CopyByPosition.Skip(1).Average() : CopyAccuracy;
}

/// <summary>
/// Measures a compressor on held-out chunks: reconstruction token accuracy, continuation loss with the compressed
/// context against no context and the full text, and prefill time (batch 1, KV cache) of the compressed context
/// against the full text, as medians over chunks.
/// </summary>
public static class ContextCompressionEval
{
    /// <summary>Evaluates <paramref name="chunks"/> (n + m ids each) in batches of <paramref name="batch"/>; <paramref name="timedChunks"/> of them are timed.</summary>
    public static ContextCompressionReport Run(ContextCompressor compressor, DecoderOnlyModel decoder, IReadOnlyList<int[]> chunks, int contextTokens, int bos,
        int batch = 16, int timedChunks = 32, int timingRepeats = 5, Action<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        if (chunks.Count == 0) throw new ArgumentException("no held-out chunks");
        int n = contextTokens, m = chunks[0].Length - n, g = compressor.CompressedLength(n);
        double recCorrect = 0, recCount = 0, recLoss = 0, comp = 0, none = 0, full = 0, copyCorrect = 0, copyCount = 0;
        var recAt = new double[n];
        var copyAt = new double[n];
        int rows = 0;
        for (int start = 0; start < chunks.Count; start += batch)
        {
            var part = chunks.Skip(start).Take(batch).ToArray();
            int b = part.Length;
            var rec = CompressionBatch.Build(CompressionTask.Reconstruction, part, n, g);
            var cont = CompressionBatch.Build(CompressionTask.Continuation, part, n, g);
            using (var compressed = compressor.Compress(rec.Compressed, b))
            {
                using (var input = compressor.DecoderInput(decoder, compressed, CompressionTask.Reconstruction, rec.DecoderTokens))
                using (var logits = decoder.ForwardEmbeddings(input))
                {
                    var (correct, count, loss) = Score(logits, rec.Labels, recAt);
                    recCorrect += correct;
                    recCount += count;
                    recLoss += loss * count;
                }
                using (var input = compressor.DecoderInput(decoder, compressed, CompressionTask.Continuation, cont.DecoderTokens))
                using (var logits = decoder.ForwardEmbeddings(input))
                    comp += Score(logits, cont.Labels).Loss * b;
            }
            // Baselines on the same m tokens: BOS y1 … y(m−1), and BOS x1 … xn y1 … y(m−1).
            var noCtx = new int[b * m];
            var noLabels = new int[b * m];
            var fullCtx = new int[b * (n + m)];
            var fullLabels = new int[b * (n + m)];
            Array.Fill(fullLabels, Labels.Ignore);
            for (int i = 0; i < b; i++)
            {
                var c = part[i];
                noCtx[i * m] = bos;
                c.AsSpan(n, m - 1).CopyTo(noCtx.AsSpan(i * m + 1));
                c.AsSpan(n, m).CopyTo(noLabels.AsSpan(i * m));
                fullCtx[i * (n + m)] = bos;
                c.AsSpan(0, n + m - 1).CopyTo(fullCtx.AsSpan(i * (n + m) + 1));
                c.AsSpan(n, m).CopyTo(fullLabels.AsSpan(i * (n + m) + n));
            }
            // The copy reference: BOS x1 … xn x1 … x(n−1), scored on the second x1 … xn.
            var copy = new int[b * 2 * n];
            var copyLabels = new int[b * 2 * n];
            Array.Fill(copyLabels, Labels.Ignore);
            for (int i = 0; i < b; i++)
            {
                var c = part[i];
                copy[i * 2 * n] = bos;
                c.AsSpan(0, n).CopyTo(copy.AsSpan(i * 2 * n + 1));
                c.AsSpan(0, n - 1).CopyTo(copy.AsSpan(i * 2 * n + 1 + n));
                c.AsSpan(0, n).CopyTo(copyLabels.AsSpan(i * 2 * n + n));
            }
            using (var logits = decoder.Forward(copy, b))
            {
                var (correct, count, _) = Score(logits, copyLabels, copyAt);
                copyCorrect += correct;
                copyCount += count;
            }
            using (var logits = decoder.Forward(noCtx, b)) none += Score(logits, noLabels).Loss * b;
            using (var logits = decoder.Forward(fullCtx, b)) full += Score(logits, fullLabels).Loss * b;
            rows += b;
            progress?.Invoke(rows);
        }
        var (fullMs, compMs, decMs) = TimePrefill(compressor, decoder, chunks.Take(Math.Max(1, timedChunks)).ToArray(), n, bos, timingRepeats);
        return new ContextCompressionReport(chunks.Count, n, m, g, recCorrect / Math.Max(1, recCount), recLoss / Math.Max(1, recCount),
            comp / rows, none / rows, full / rows, fullMs, compMs, decMs, copyCorrect / Math.Max(1, copyCount),
            recAt.Select(h => h / rows).ToArray(), copyAt.Select(h => h / rows).ToArray());
    }

    // (argmax hits, labelled positions, mean cross-entropy) of logits (…, V) against labels. With hitsAt (n long), each
    // row's labelled positions are its n reproduced tokens in order, and hitsAt[k] counts the rows that got the k-th right.
    internal static (double Correct, double Count, double Loss) Score(Var logits, int[] labels, double[]? hitsAt = null)
    {
        int v = logits.Shape[^1];
        var s = logits.Value.AsReadOnlySpan<float>();
        double correct = 0, count = 0, loss = 0;
        int rowLength = logits.Shape.Length >= 3 ? logits.Shape[^2] : labels.Length, k = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            if (i % rowLength == 0) k = 0;
            if (labels[i] == Labels.Ignore) continue;
            var row = s.Slice(i * v, v);
            int best = 0;
            float max = row[0];
            for (int j = 1; j < v; j++)
                if (row[j] > max) { max = row[j]; best = j; }
            double sum = 0;
            for (int j = 0; j < v; j++) sum += Math.Exp(row[j] - max);
            loss += Math.Log(sum) + max - row[labels[i]];
            if (best == labels[i])
            {
                correct++;
                if (hitsAt is not null) hitsAt[k]++;
            }
            k++;
            count++;
        }
        return (correct, count, count > 0 ? loss / count : 0);
    }

    // Median ms of: the full prefill (BOS + n tokens), compression + prefill of G + 1 vectors, and that prefill alone.
    static (double Full, double Compressed, double Decoder) TimePrefill(ContextCompressor compressor, DecoderOnlyModel decoder, int[][] chunks, int n, int bos, int repeats)
    {
        var fullTimes = new List<double>();
        var compTimes = new List<double>();
        var decTimes = new List<double>();
        int g = compressor.CompressedLength(n);
        for (int r = -1; r < repeats; r++)   // r = −1 warms up
            foreach (var chunk in chunks)
            {
                var ids = new int[n + 1];
                ids[0] = bos;
                chunk.AsSpan(0, n).CopyTo(ids.AsSpan(1));
                var sw = Stopwatch.StartNew();
                using (var cache = decoder.CreateCache(1, n + 1))
                using (var logits = decoder.Prefill(ids, 1, cache)) { }
                double fullMs = sw.Elapsed.TotalMilliseconds;
                sw.Restart();
                double decMs;
                using (var cache = decoder.CreateCache(1, g + 1))
                using (var compressed = compressor.Compress(chunk[..n], 1))
                using (var input = compressor.DecoderInput(decoder, compressed, CompressionTask.Continuation, []))
                {
                    var sd = Stopwatch.StartNew();
                    using (var logits = decoder.PrefillEmbeddings(input, cache)) { }
                    decMs = sd.Elapsed.TotalMilliseconds;
                }
                double compMs = sw.Elapsed.TotalMilliseconds;
                if (r < 0) continue;
                fullTimes.Add(fullMs);
                compTimes.Add(compMs);
                decTimes.Add(decMs);
            }
        return (Median(fullTimes), Median(compTimes), Median(decTimes));
    }

    static double Median(List<double> xs)
    {
        if (xs.Count == 0) return double.NaN;
        xs.Sort();
        return xs.Count % 2 == 1 ? xs[xs.Count / 2] : (xs[xs.Count / 2 - 1] + xs[xs.Count / 2]) / 2;
    }
}

// The discrete key–value bottleneck (Träuble et al., "Discrete Key-Value Bottleneck", arXiv 2207.11240;
// reference code ftraeuble/discrete_key_value_bottleneck, key_value_bottleneck/core.py): the features of a
// frozen encoder are split into C parts; each part looks up its nearest key (L2) in its own codebook and
// fetches that key's value. Keys are fitted without labels (initialized from samples, then moved by an
// exponential moving average of the features assigned to them, as VQ-VAE's EMA codebooks) and frozen;
// only the values train, and a step changes only the values its batch fetched.
using Encore.Autograd;

namespace Encore.Models;

/// <summary>Shape and key-learning settings of a <see cref="KeyValueBottleneck"/>.</summary>
public sealed record KeyValueBottleneckOptions
{
    /// <summary>C, the codebooks; the features split into C equal parts (the reference code's "chunk" split). Default 8.</summary>
    public int Codebooks { get; init; } = 8;
    /// <summary>K, the key–value pairs per codebook. Default 64.</summary>
    public int Keys { get; init; } = 64;
    /// <summary>Dv, the width of a value. Default 16.</summary>
    public int ValueDim { get; init; } = 16;
    /// <summary>Average the C fetched values into one (N, Dv) output (true), or concatenate them into (N, C·Dv). Default true.</summary>
    public bool Average { get; init; } = true;
    /// <summary>The EMA decay of the key updates (core.py's 0.95). Default 0.95.</summary>
    public float Decay { get; init; } = 0.95f;
    /// <summary>Laplace smoothing ε of the EMA cluster sizes (core.py's 1e-5). Default 1e-5.</summary>
    public float Epsilon { get; init; } = 1e-5f;

    /// <summary>Largest C, K and Dv accepted.</summary>
    public const int MaxCount = 1 << 16;

    /// <summary>Throws with a message naming the setting that is out of range.</summary>
    public KeyValueBottleneckOptions Validate()
    {
        if (Codebooks < 1 || Codebooks > MaxCount) throw new ArgumentException($"key-value bottleneck: codebooks must be in [1, {MaxCount}], got {Codebooks}");
        if (Keys < 1 || Keys > MaxCount) throw new ArgumentException($"key-value bottleneck: keys must be in [1, {MaxCount}], got {Keys}");
        if (ValueDim < 1 || ValueDim > MaxCount) throw new ArgumentException($"key-value bottleneck: value_dim must be in [1, {MaxCount}], got {ValueDim}");
        if (!(Decay >= 0 && Decay < 1)) throw new ArgumentException($"key-value bottleneck: decay must be in [0, 1), got {Decay}");
        if (!(Epsilon > 0 && Epsilon < 1)) throw new ArgumentException($"key-value bottleneck: epsilon must be in (0, 1), got {Epsilon}");
        return this;
    }
}

/// <summary>
/// A discrete key–value bottleneck over features (N, C·dk) of a frozen encoder: keys (C, K, dk), parameter
/// <c>kv_bottleneck.keys</c>, never trained by gradients; values (C, K, Dv), <c>kv_bottleneck.values</c>, starting at 0.
/// Fit the keys with <see cref="InitializeKeys"/> and <see cref="UpdateKeys"/> on unlabelled features, then
/// <see cref="FreezeKeys"/>; train the values through <see cref="Forward"/> (<see cref="Ops.KeyValueFetch"/>).
/// </summary>
public sealed class KeyValueBottleneck : IDisposable
{
    /// <summary>The keys' parameter name.</summary>
    public const string KeysName = "kv_bottleneck.keys";
    /// <summary>The values' parameter name.</summary>
    public const string ValuesName = "kv_bottleneck.values";

    readonly float[] _clusterSize;   // (C, K) EMA of the rows assigned to each key
    readonly float[] _keySum;        // (C, K, dk) EMA of the sum of those rows

    /// <summary>A bottleneck over <paramref name="features"/>-wide rows; <paramref name="seed"/> draws the rows keys start from.</summary>
    public KeyValueBottleneck(int features, KeyValueBottleneckOptions options, ulong seed = 0)
    {
        Options = (options ?? throw new ArgumentNullException(nameof(options))).Validate();
        int c = Options.Codebooks;
        if (features < c || features % c != 0) throw new ArgumentException($"key-value bottleneck: {features} features do not split into {c} codebooks");
        Features = features;
        KeyDim = features / c;
        Seed = seed;
        Parameters = new ParameterSet(seed);
        Parameters.CreateF32Table(KeysName, [c, Options.Keys, KeyDim], ParameterSet.Init.Normal, 1f).Trainable = false;
        Parameters.CreateF32Table(ValuesName, [c, Options.Keys, Options.ValueDim], ParameterSet.Init.Zeros).Decay = false;
        _clusterSize = new float[c * Options.Keys];
        _clusterSize.AsSpan().Fill(1);
        _keySum = Parameters[KeysName].Value.ToFloatArray();
    }

    /// <summary>The settings.</summary>
    public KeyValueBottleneckOptions Options { get; }
    /// <summary>C·dk, the width of an input row.</summary>
    public int Features { get; }
    /// <summary>dk, the width of one codebook's part of a row.</summary>
    public int KeyDim { get; }
    /// <summary>The seed of the key initialization.</summary>
    public ulong Seed { get; }
    /// <summary>Keys and values by checkpoint name.</summary>
    public ParameterSet Parameters { get; }
    /// <summary>Whether the keys are frozen (<see cref="FreezeKeys"/>).</summary>
    public bool KeysFrozen { get; private set; }
    /// <summary>The values (C, K, Dv), the only trained parameter.</summary>
    public Parameter Values => Parameters[ValuesName];
    /// <summary>The keys (C, K, dk).</summary>
    public Parameter Keys => Parameters[KeysName];
    /// <summary>Width of <see cref="Forward"/>'s output: Dv when averaging, C·Dv when concatenating.</summary>
    public int OutputWidth => Options.Average ? Options.ValueDim : Options.Codebooks * Options.ValueDim;

    /// <summary>
    /// Starts each codebook's keys at the parts of K rows drawn from <paramref name="features"/> (N, C·dk) without
    /// replacement while they last (each codebook its own draw), and resets the EMA statistics to them.
    /// </summary>
    public void InitializeKeys(ReadOnlySpan<float> features, int n)
    {
        CheckRows(features, n, "InitializeKeys");
        if (n < 1) throw new ArgumentException("key-value bottleneck: InitializeKeys needs at least one row");
        int c = Options.Codebooks, k = Options.Keys, dk = KeyDim;
        var keys = Keys.Value.AsSpan<float>();
        var rng = new Random((int)(Seed % int.MaxValue) ^ 0x6B76);
        var order = new int[n];
        for (int j = 0; j < c; j++)
        {
            for (int i = 0; i < n; i++) order[i] = i;
            rng.Shuffle(order);
            for (int i = 0; i < k; i++)
                features.Slice(order[i % n] * Features + j * dk, dk).CopyTo(keys.Slice((j * k + i) * dk, dk));
        }
        keys.CopyTo(_keySum);
        _clusterSize.AsSpan().Fill(1);
    }

    /// <summary>
    /// One EMA step of the keys on unlabelled rows (N, C·dk), as VQ-VAE's EMA codebooks and core.py: each row's part
    /// goes to its nearest key; n_j ← γ·n_j + (1 − γ)·count_j, s_j ← γ·s_j + (1 − γ)·Σ assigned rows; with the sizes
    /// Laplace-smoothed, ñ_j = (n_j + ε)/(Σn + K·ε)·Σn, key_j = s_j / ñ_j.
    /// </summary>
    public void UpdateKeys(ReadOnlySpan<float> features, int n)
    {
        if (KeysFrozen) throw new InvalidOperationException("key-value bottleneck: the keys are frozen");
        CheckRows(features, n, "UpdateKeys");
        int c = Options.Codebooks, k = Options.Keys, dk = KeyDim;
        float g = Options.Decay, eps = Options.Epsilon;
        var slots = Lookup(features, n);
        var counts = new float[c * k];
        var sums = new float[c * k * dk];
        for (int r = 0; r < n; r++)
            for (int j = 0; j < c; j++)
            {
                int s = j * k + slots[r * c + j];
                counts[s]++;
                var part = features.Slice(r * Features + j * dk, dk);
                for (int e = 0; e < dk; e++) sums[s * dk + e] += part[e];
            }
        var keys = Keys.Value.AsSpan<float>();
        for (int j = 0; j < c; j++)
        {
            double total = 0;
            for (int i = 0; i < k; i++)
            {
                int s = j * k + i;
                _clusterSize[s] = g * _clusterSize[s] + (1 - g) * counts[s];
                for (int e = 0; e < dk; e++) _keySum[s * dk + e] = g * _keySum[s * dk + e] + (1 - g) * sums[s * dk + e];
                total += _clusterSize[s];
            }
            for (int i = 0; i < k; i++)
            {
                int s = j * k + i;
                float smoothed = (float)((_clusterSize[s] + eps) / (total + k * eps) * total);
                for (int e = 0; e < dk; e++) keys[s * dk + e] = _keySum[s * dk + e] / smoothed;
            }
        }
    }

    /// <summary>Freezes the keys: <see cref="UpdateKeys"/> refuses from now on and only the values change.</summary>
    public void FreezeKeys() => KeysFrozen = true;

    /// <summary>Each row's nearest key (squared L2) per codebook, (N·C) slots in [0, K); ties keep the lower index.</summary>
    public int[] Lookup(ReadOnlySpan<float> features, int n)
    {
        CheckRows(features, n, "Lookup");
        int c = Options.Codebooks, k = Options.Keys, dk = KeyDim;
        var keys = Keys.Value.AsReadOnlySpan<float>();
        var slots = new int[n * c];
        for (int r = 0; r < n; r++)
            for (int j = 0; j < c; j++)
            {
                var part = features.Slice(r * Features + j * dk, dk);
                int best = 0;
                float bestDistance = float.PositiveInfinity;
                for (int i = 0; i < k; i++)
                {
                    var key = keys.Slice((j * k + i) * dk, dk);
                    float distance = 0;
                    for (int e = 0; e < dk; e++)
                    {
                        float diff = part[e] - key[e];
                        distance += diff * diff;
                    }
                    if (distance < bestDistance)
                    {
                        bestDistance = distance;
                        best = i;
                    }
                }
                slots[r * c + j] = best;
            }
        return slots;
    }

    /// <summary>features (N, C·dk) → the fetched values, (N, Dv) averaged or (N, C·Dv) concatenated; no gradient reaches the features.</summary>
    public Var Forward(Var features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.Value.Rank != 2 || features.Shape[1] != Features)
            throw new ArgumentException($"key-value bottleneck: features {features.Value.Describe()} must be (N, {Features})");
        var slots = Lookup(features.Value.AsReadOnlySpan<float>(), features.Shape[0]);
        return Ops.KeyValueFetch(Var.Of(Values), slots, Options.Average);
    }

    void CheckRows(ReadOnlySpan<float> features, int n, string op)
    {
        if (n < 0 || features.Length != (long)n * Features)
            throw new ArgumentException($"key-value bottleneck: {op} got {features.Length} values for {n} rows of {Features} features");
    }

    /// <summary>Frees the keys and values.</summary>
    public void Dispose() => Parameters.Dispose();
}

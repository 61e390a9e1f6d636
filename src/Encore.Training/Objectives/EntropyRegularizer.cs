using Encore.Autograd;
using Encore.Formats;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Training.Objectives;

/// <summary>
/// Settings of the entropy regularizer of Entropy-Guided Attention (Jha and Reagen, arXiv 2501.03489; the
/// authors' <c>EntropyRegularization</c>): defaults are that code's.
/// </summary>
public sealed record EntropyRegularizerOptions
{
    /// <summary>λ, the loss coefficient (<c>loss_coeff</c>). Default 1e-5.</summary>
    public float Weight { get; init; } = 1e-5f;
    /// <summary>γ, the tolerance margin as a fraction of the maximum entropy (<c>tolerance_margin_factor</c>). Default 0.2.</summary>
    public float Tolerance { get; init; } = 0.2f;
    /// <summary>
    /// The starting value of every learnable threshold θ (a fraction of the maximum entropy). The released code takes θ
    /// from the model (<c>reg_threshold_weights</c>) without showing its initial value; 0.5 is this implementation's choice.
    /// Default 0.5.
    /// </summary>
    public float InitialThreshold { get; init; } = 0.5f;

    /// <summary>Throws naming the first setting out of range (with the <c>encore train</c> option that sets it).</summary>
    public EntropyRegularizerOptions Validate()
    {
        if (!(Weight > 0) || !float.IsFinite(Weight)) throw new ArgumentException($"--entropy-reg: the weight must be positive, got {Weight}");
        if (!(Tolerance >= 0) || !float.IsFinite(Tolerance)) throw new ArgumentException($"--entropy-tolerance must be ≥ 0, got {Tolerance}");
        if (!(InitialThreshold >= 0) || !float.IsFinite(InitialThreshold)) throw new ArgumentException($"--entropy-threshold must be ≥ 0, got {InitialThreshold}");
        return this;
    }
}

/// <summary>
/// The entropy regularizer of arXiv 2501.03489 as its code computes it: for every attention layer l and head h, with the
/// maximum entropy Hmax = log S (S the attention matrix's width) and δ = H[b, h, t] − θ[l, h]·Hmax,
/// <c>L_ent = λ · mean_l mean_h Σ_{b,t} (|δ| &gt; γ·Hmax ? δ : 0)²</c>, added to the cross-entropy in training
/// (<see cref="Ops.EntropyPenalty"/>). θ is learned with the model. Where this differs from that code: θ is one vector
/// per attention layer (its usage example reads the first block's and applies it to every layer), padded query rows
/// are left out, and cross-attention layers count as layers of their own.
/// </summary>
public sealed class EntropyRegularizer : IDisposable
{
    readonly EntropyRegularizerOptions _o;
    readonly Parameter[] _thresholds;

    /// <summary>One threshold vector θ (H) per attention layer of <paramref name="model"/>, each at <see cref="EntropyRegularizerOptions.InitialThreshold"/>.</summary>
    public EntropyRegularizer(LanguageModel model, EntropyRegularizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        _o = options.Validate();
        int layers = model.Stacks.Sum(s => s.Layers * (model is EncoderDecoderModel && s.Causal ? 2 : 1));
        int heads = model.Config.Heads;
        _thresholds = new Parameter[layers];
        for (int i = 0; i < layers; i++)
        {
            var values = new float[heads];
            Array.Fill(values, _o.InitialThreshold);
            _thresholds[i] = new Parameter($"entropy_reg.threshold.{i}", Tensor.FromArray(values, heads));
        }
    }

    /// <summary>The learnable thresholds θ, one (H) per attention layer in the order the layers run; trained with the model.</summary>
    public IReadOnlyList<Parameter> Thresholds => _thresholds;

    /// <summary>λ · mean over layers of each layer's penalty, from one forward pass's records (with their gradients).</summary>
    public Var Loss(IReadOnlyList<AttentionEntropyRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count != _thresholds.Length)
            throw new InvalidOperationException($"the entropy regularizer holds thresholds for {_thresholds.Length} attention layers; the pass recorded {records.Count}");
        Var? total = null;
        for (int i = 0; i < records.Count; i++)
        {
            var r = records[i];
            float max = MathF.Log(Math.Max(r.KeyLength, 1));
            var penalty = Ops.EntropyPenalty(r.Entropy, Var.Of(_thresholds[i]), max, _o.Tolerance * max, r.QueryLengths);
            total = total is null ? penalty : Ops.Add(total, penalty);
        }
        return Ops.Scale(total!, _o.Weight / records.Count);
    }

    /// <summary>File name of the thresholds inside a checkpoint directory.</summary>
    public const string FileName = "entropy_thresholds.safetensors";

    /// <summary>Writes the thresholds into the checkpoint directory <paramref name="dir"/> (a resumed run continues from them).</summary>
    public void Save(string dir) => SafetensorsFile.Write(Path.Combine(dir, FileName), _thresholds.Select(p => KeyValuePair.Create(p.Name, p.Value)));

    /// <summary>
    /// Reads the thresholds a checkpoint in <paramref name="dir"/> holds; a checkpoint without them (a run forked from one
    /// trained without the regularizer) leaves them at their start. A file for other layers or heads is an error naming it.
    /// </summary>
    public void Load(string dir)
    {
        string path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) return;
        using var file = SafetensorsFile.Open(path);
        foreach (var p in _thresholds)
        {
            if (!file.Contains(p.Name) || !file[p.Name].Shape.SequenceEqual(p.Value.Shape.ToArray()))
                throw new CheckpointFormatException($"{path}: no threshold '{p.Name}' of {p.Value.Length} heads; the checkpoint's model has other attention layers");
            using var t = file.Read(p.Name);
            t.AsReadOnlySpan<float>().CopyTo(p.Value.AsSpan<float>());
        }
    }

    /// <summary>Frees the thresholds.</summary>
    public void Dispose()
    {
        foreach (var p in _thresholds) p.Dispose();
    }
}

namespace Encore.Autograd.Optim;

/// <summary>Shapes of the learning-rate curve after warm-up.</summary>
public enum LrDecay
{
    /// <summary>Constant at the peak.</summary>
    Constant,
    /// <summary>Linear to <see cref="LrSchedule.MinRatio"/>·peak at the last step.</summary>
    Linear,
    /// <summary>Half a cosine to <see cref="LrSchedule.MinRatio"/>·peak at the last step.</summary>
    Cosine,
    /// <summary>peak·√(warmup/step) after warm-up (the Transformer / T5 schedule).</summary>
    InverseSqrt,
}

/// <summary>
/// Learning rate as a function of the step: linear warm-up from 0 over <see cref="WarmupSteps"/>,
/// then <see cref="Decay"/>. Steps are 1-based (the rate of the first update is At(1)), matching
/// Hugging Face's <c>get_*_schedule_with_warmup</c> with its scheduler stepped after each update.
/// </summary>
public sealed record LrSchedule
{
    /// <summary>The peak rate. Default 1e-3.</summary>
    public double Peak { get; init; } = 1e-3;
    /// <summary>Steps of linear warm-up. Default 0.</summary>
    public int WarmupSteps { get; init; }
    /// <summary>Total steps (the end of linear and cosine decay). Default 1000.</summary>
    public int TotalSteps { get; init; } = 1000;
    /// <summary>The curve after warm-up. Default cosine.</summary>
    public LrDecay Decay { get; init; } = LrDecay.Cosine;
    /// <summary>Final rate as a fraction of the peak, for linear and cosine. Default 0.</summary>
    public double MinRatio { get; init; }

    /// <summary>The rate for update number <paramref name="step"/> (1-based).</summary>
    public double At(long step)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), "steps are 1-based");
        // HF computes the rate of update t from the scheduler's count t-1.
        long s = step - 1;
        if (s < WarmupSteps) return Peak * s / Math.Max(1, WarmupSteps);
        double progress = TotalSteps <= WarmupSteps ? 1 : Math.Min(1.0, (double)(s - WarmupSteps) / (TotalSteps - WarmupSteps));
        return Decay switch
        {
            LrDecay.Constant => Peak,
            LrDecay.Linear => Peak * (MinRatio + (1 - MinRatio) * (1 - progress)),
            LrDecay.Cosine => Peak * (MinRatio + (1 - MinRatio) * 0.5 * (1 + Math.Cos(Math.PI * progress))),
            LrDecay.InverseSqrt => Peak * Math.Sqrt(Math.Max(1, WarmupSteps) / (double)Math.Max(s, Math.Max(1, WarmupSteps))),
            _ => throw new InvalidOperationException(),
        };
    }
}

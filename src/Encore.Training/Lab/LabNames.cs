using Encore.Models;

namespace Encore.Training.Lab;

/// <summary>The names studies print for position kinds and families, and their command-line spellings.</summary>
public static class LabNames
{
    /// <summary>Every position kind, in the order tables list them.</summary>
    public static readonly PositionKind[] Positions =
        [PositionKind.None, PositionKind.Learned, PositionKind.Sinusoidal, PositionKind.T5Relative, PositionKind.Alibi, PositionKind.Rope, PositionKind.ComRope, PositionKind.Urpe];

    static readonly (PositionKind Kind, string Name, string Flag)[] PositionNames =
    [
        (PositionKind.None, "NoPE", "nope"),
        (PositionKind.Learned, "learned", "learned"),
        (PositionKind.Sinusoidal, "sinusoidal", "sinusoidal"),
        (PositionKind.T5Relative, "T5 bias", "t5"),
        (PositionKind.Alibi, "ALiBi", "alibi"),
        (PositionKind.Rope, "RoPE", "rope"),
        (PositionKind.ComRope, "ComRoPE", "comrope"),
        (PositionKind.Urpe, "URPE", "urpe"),
    ];

    /// <summary>The printed name of <paramref name="kind"/> ("NoPE", "T5 bias", …).</summary>
    public static string Name(PositionKind kind) => PositionNames.First(p => p.Kind == kind).Name;

    /// <summary>The kind named <paramref name="flag"/> on the command line (nope, learned, sinusoidal, t5, alibi, rope, comrope, urpe).</summary>
    public static PositionKind ParsePosition(string flag, string option = "--positions")
    {
        string f = (flag ?? "").Trim().ToLowerInvariant();
        foreach (var p in PositionNames)
            if (p.Flag == f || p.Name.Equals(f, StringComparison.OrdinalIgnoreCase) || p.Kind.ToString().Equals(f, StringComparison.OrdinalIgnoreCase)) return p.Kind;
        throw new ArgumentException($"{option}: unknown position encoding '{flag}'; one of {string.Join(", ", PositionNames.Select(p => p.Flag))}");
    }

    /// <summary>"decoder-only", "encoder–decoder".</summary>
    public static string Name(ModelFamily family) => family switch
    {
        ModelFamily.DecoderOnly => "decoder-only",
        ModelFamily.EncoderDecoder => "encoder–decoder",
        _ => "encoder-only",
    };

    /// <summary>The family named <paramref name="flag"/>: decoder (decoder-only) or encdec (encoder–decoder).</summary>
    public static ModelFamily ParseFamily(string flag, string option = "--families") => (flag ?? "").Trim().ToLowerInvariant() switch
    {
        "decoder" or "decoder-only" or "decoderonly" => ModelFamily.DecoderOnly,
        "encdec" or "encoder-decoder" or "encoderdecoder" or "encoder–decoder" => ModelFamily.EncoderDecoder,
        _ => throw new ArgumentException($"{option}: unknown family '{flag}'; one of decoder, encdec"),
    };
}

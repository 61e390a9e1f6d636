using Encore.Autograd;

namespace Encore.Generation;

/// <summary>
/// One <see cref="Workspace"/> per number of tokens a pass feeds to a row: speculative verification
/// passes vary in length from round to round, and a single workspace would reallocate its outputs at
/// every change of shape, while one per length reaches a steady state where passes allocate nothing.
/// </summary>
internal sealed class WorkspacesByLength : IDisposable
{
    /// <summary>Longest pass with a workspace of its own (a verification pass of the most drafts allowed, 64, plus one); longer passes share one.</summary>
    public const int MaxLength = 65;

    readonly Workspace?[] _byLength = new Workspace?[MaxLength + 2];

    /// <summary>The workspace of passes of <paramref name="length"/> tokens.</summary>
    public Workspace For(int length) => _byLength[Math.Clamp(length, 0, MaxLength + 1)] ??= new Workspace();

    /// <summary>Frees every workspace.</summary>
    public void Dispose()
    {
        foreach (var w in _byLength) w?.Dispose();
    }
}

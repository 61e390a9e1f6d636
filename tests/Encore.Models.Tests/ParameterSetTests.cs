using Encore.Tensors;

namespace Encore.Models.Tests;

public class ParameterSetTests
{
    [Fact]
    public void DeferredInitializationGivesUnassignedParametersTheSeededValues()
    {
        var config = Presets.Get("tiny-encdec");
        using var eager = LanguageModel.Create(config);
        using var deferred = LanguageModel.CreateForLoading(config);
        // Assign every other parameter from the eager model; the rest are initialized afterwards.
        var names = eager.Parameters.All.Select(p => p.Name).ToArray();
        for (int i = 0; i < names.Length; i += 2) deferred.Parameters.Assign(names[i], eager.Parameters[names[i]].Value.Clone());
        deferred.Parameters.InitializeRemaining();
        foreach (var n in names) Assert.Equal(eager.Parameters[n].Value.ToFloatArray(), deferred.Parameters[n].Value.ToFloatArray());
        Assert.Contains(names, n => n.EndsWith("norm.weight", StringComparison.Ordinal)); // ones-initialized ones are covered too
    }

    [Fact]
    public void AssigningAfterInitializeRemainingKeepsTheAssignedValues()
    {
        using var set = new ParameterSet(3, deferInitialization: true);
        set.Create("w", [2, 3], ParameterSet.Init.Normal);
        set.Create("g", [3], ParameterSet.Init.Ones);
        set.Assign("w", Tensor.FromArray(new float[] { 1, 2, 3, 4, 5, 6 }, 2, 3));
        set.InitializeRemaining();
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, set["w"].Value.ToFloatArray());
        Assert.Equal(new float[] { 1, 1, 1 }, set["g"].Value.ToFloatArray());
        // Deferral has ended: a parameter created now is initialized at once.
        set.Create("b", [2], ParameterSet.Init.Ones);
        Assert.Equal(new float[] { 1, 1 }, set["b"].Value.ToFloatArray());
    }
}

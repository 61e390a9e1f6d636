namespace Encore.Autograd.Tests;

public class SequenceOpsTests
{
    [Fact]
    public void GroupMeanAveragesConsecutiveGroups()
    {
        // (1, 5, 2): groups 2, 2, 1 → the means of positions {0,1}, {2,3} and {4}.
        using var x = Var.Constant(Encore.Tensors.Tensor.FromArray([1f, 10, 3, 30, 5, 50, 7, 70, 9, 90], 1, 5, 2));
        using var y = Ops.GroupMean(x, [2, 2, 1]);
        Assert.Equal([1, 3, 2], y.Shape.ToArray());
        Assert.Equal([2f, 20, 6, 60, 9, 90], y.Value.ToFloatArray());
    }

    [Fact]
    public void GroupMeanRefusesGroupsThatDoNotCoverThePositions()
    {
        using var x = Var.Constant(Encore.Tensors.Tensor.Zeros(Encore.Tensors.DType.F32, 1, 5, 2));
        Assert.Contains("sum to 4", Assert.Throws<ArgumentException>(() => Ops.GroupMean(x, [2, 2])).Message);
        Assert.Contains("≥ 1", Assert.Throws<ArgumentException>(() => Ops.GroupMean(x, [5, 0])).Message);
    }

    [Fact]
    public void GroupMeanAndConcatPositionsMatchFiniteDifferences()
    {
        var rng = new Random(4);
        var x = GradCheck.Random("x", rng, 2, 7, 3);
        var a = GradCheck.Random("a", rng, 2, 2, 3);
        var w = GradCheck.Random("w", rng, 3, 3);
        GradCheck.Check([x, a, w], v =>
        {
            var pooled = Ops.GroupMean(v[0], [3, 2, 2]);                     // (2, 3, 3)
            var joined = Ops.ConcatPositions(pooled, v[1], v[0]);             // (2, 12, 3)
            var y = Ops.Linear(joined, v[2]);
            return Ops.CrossEntropy(Ops.Reshape(y, 24, 3), Enumerable.Range(0, 24).Select(i => i % 3).ToArray());
        });
    }
}

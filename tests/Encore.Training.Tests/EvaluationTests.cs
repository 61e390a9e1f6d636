using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Metrics;
using Encore.Training.Runs;

namespace Encore.Training.Tests;

public class EvaluationTests
{
    [Fact]
    public void TheBaselinesAreLeadOfTheMedianReferenceLengthAndTheMajorityAnswer()
    {
        TextPair[] examples =
        [
            new("one two three four five", "one two"),
            new("alpha beta gamma", "red"),
            new("x y z", "red"),
        ];
        var b = Evaluation.Baselines(examples);
        // Reference lengths 2, 1, 1 → median 1: lead-1 outputs "one", "alpha", "x".
        Assert.Equal("lead-1", b[0].Name);
        Assert.Equal(TextMetrics.All(["one", "alpha", "x"], ["one two", "red", "red"])["rouge_l"], b[0].Metrics["rouge_l"], 9);
        Assert.Equal("majority", b[1].Name);
        Assert.Contains("\"red\"", b[1].Description);
        Assert.Equal(100.0 * 2 / 3, b[1].Metrics["exact_match"], 9);
        Assert.Equal("one two", Evaluation.Lead(" one  two three ", 2));
    }

    [Fact]
    public void EvaluatingATinyModelReportsTheTrainingLossAndOneOutputPerExample()
    {
        var tok = TestData.Tokenizer;
        var pairs = DatasetReader.ReadPairs(TestData.Path(BundledData.WordNetValidation)).Take(12).ToList();
        using var model = TrainingRun.LoadModel("tiny-encdec", tok);
        var r = Evaluation.Run(model, tok, pairs, new EvaluationOptions { MaxNewTokens = 4, Samples = 2, BatchSize = 5 });
        Assert.Equal(12, r.Examples);
        Assert.Equal(2, r.Samples.Count);
        Assert.Equal(pairs[1].Target, r.Samples[1].Reference);
        // An untrained model over a 1,024-id vocabulary: the loss is near ln 1024 ≈ 6.9.
        Assert.InRange(r.Loss, 5.5, 9.5);
        Assert.Equal(Math.Exp(r.Loss), r.Perplexity, 6);
        Assert.Equal(7, r.Metrics.Count);
        using var encoder = TrainingRun.LoadModel("tiny-encoder", tok);
        Assert.Throws<ArgumentException>(() => Evaluation.Run(encoder, tok, pairs));
        Assert.Throws<ArgumentException>(() => Evaluation.Run(model, tok, []));
    }
}

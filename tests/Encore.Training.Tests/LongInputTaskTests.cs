using Encore.Training.Data;

namespace Encore.Training.Tests;

public class LongInputTaskTests
{
    [Fact]
    public void SameSeedSameData()
    {
        Assert.Equal(LongInputTask.Generate(50, 9), LongInputTask.Generate(50, 9));
        Assert.NotEqual(LongInputTask.Generate(5, 9), LongInputTask.Generate(5, 10));
    }

    [Fact]
    public void EveryAnswerIsTheStatedFactAndFactsAreUnique()
    {
        foreach (var p in LongInputTask.Generate(300, 3))
        {
            Assert.Equal(p.Target, LongInputTask.Answer(p.Source));
            var facts = p.Source["context: ".Length..p.Source.IndexOf(" question:", StringComparison.Ordinal)].Split(". ");
            Assert.InRange(facts.Length, 20, 60);
            var subjects = facts.Select(f => f[..f.IndexOf(" is ", StringComparison.Ordinal)]).ToList();
            Assert.Equal(subjects.Count, subjects.Distinct().Count()); // one colour per (object, name): the answer is unambiguous
            Assert.Contains(p.Target, LongInputTask.Colors);
        }
    }

    [Fact]
    public void AnswerReadsTheAskedFactNotADistractor()
    {
        string src = "context: The key of Bob is red. The key of Alice is blue. The hat of Alice is gold. question: What color is the key of Alice?";
        Assert.Equal("blue", LongInputTask.Answer(src));
        Assert.Null(LongInputTask.Answer("context: The key of Bob is red. question: What color is the key of Alice?"));
    }

    [Fact]
    public void CSharpGeneratorReproducesTheBundledFiles()
    {
        Assert.Equal(DatasetReader.ReadPairs(TestData.Path(BundledData.LongInputTrain)), LongInputTask.Generate(700, 1));
        Assert.Equal(DatasetReader.ReadPairs(TestData.Path(BundledData.LongInputValidation)), LongInputTask.Generate(100, 2));
    }

    [Fact]
    public void SourcesAreSeveralHundredTokensAndTargetsShort()
    {
        var tok = TestData.Tokenizer;
        var data = TokenizedDataset.FromPairs(LongInputTask.Generate(100, 4), tok);
        double meanSource = data.Sources.Average(s => s.Length);
        Assert.InRange(meanSource, 200, 1000);
        Assert.All(data.Targets!, t => Assert.InRange(t.Length, 1, 3));
    }

    [Fact]
    public void OptionsBoundTheFactCount()
    {
        foreach (var p in LongInputTask.Generate(50, 5, new LongInputOptions { MinFacts = 2, MaxFacts = 3 }))
            Assert.InRange(p.Source.Split(" of ").Length - 2, 2, 3); // one " of " per fact and one in the question
        Assert.Throws<ArgumentOutOfRangeException>(() => LongInputTask.Generate(1, 1, new LongInputOptions { MinFacts = 5, MaxFacts = 4 }));
    }
}

using Encore.Models;
using Encore.Training.Runs;
using Encore.Training.Data;
using Encore.Training.Objectives;

namespace Encore.Training.Tests;

public class BundledDataTests
{
    [Fact]
    public void TokenizerHasTheT5IdLayoutAndSentinels()
    {
        var tok = TestData.Tokenizer;
        Assert.Equal(0, tok.PadId);
        Assert.Equal(1, tok.EosId);
        Assert.Equal(2, tok.BosId);
        Assert.Equal(3, tok.TokenToId("<mask>"));
        Assert.Equal(4, tok.SentinelId(0));
        Assert.Equal(103, tok.SentinelId(99));
        Assert.Equal("define: bank (noun)", tok.Decode(tok.Encode("define: bank (noun)", addSpecialTokens: false)));
        var o = Seq2SeqOptions.For(tok, TrainingRun.ForTokenizer(Presets.Get("tiny-encdec"), tok));
        Assert.Equal(2, o.DecoderStartId);
        Assert.Equal((0, 1), (o.PadId, o.EosId));
    }

    [Fact]
    public void EveryObjectiveRunsOverTheWordNetDefinitionsAsText()
    {
        var tok = TestData.Tokenizer;
        var pairs = TokenizedDataset.LoadPairs(TestData.Path(BundledData.WordNetValidation), tok);
        var docs = TokenizedDataset.FromDocuments(DatasetReader.ReadPairs(TestData.Path(BundledData.WordNetValidation)).Select(p => p.Target).ToList(), tok, "glosses");
        ITrainingObjective mlm = new MaskedLmObjective(new MaskedLmOptions { MaskId = tok.TokenToId("<mask>")!.Value, VocabSize = tok.VocabSize, NoRandom = Enumerable.Range(0, 104).ToArray() });
        var cases = new (TokenizedDataset Data, ITrainingObjective Objective)[]
        {
            (pairs, new Seq2SeqObjective(Seq2SeqOptions.For(tok, TrainingRun.ForTokenizer(Presets.Get("tiny-encdec"), tok)))),
            (pairs, new CausalLmObjective(CausalLmOptions.For(tok))),
            (docs, new SpanCorruptionObjective(SpanCorruptionOptions.For(tok, TrainingRun.ForTokenizer(Presets.Get("tiny-encdec"), tok)))),
            (docs, new PrefixLmObjective(CausalLmOptions.For(tok))),
            (docs, mlm),
        };
        foreach (var (data, objective) in cases)
        {
            var batches = new TrainingBatches(data, objective, new BucketingOptions { MaxTokens = 2048, Seed = 5 });
            int rows = 0;
            long loss = 0;
            foreach (var b in batches.Epoch(0))
            {
                Assert.True(b.PaddedTokens <= 2048, objective.Name);
                Assert.Equal(objective.HasSource ? b.Size * b.SourceLength : 0, b.Source.Length);
                Assert.All(b.Inputs, id => Assert.InRange(id, 0, tok.VocabSize - 1));
                rows += b.Size;
                loss += b.LossTokens;
            }
            Assert.Equal(data.Count, rows);
            Assert.True(loss > 0, objective.Name);
        }
    }
}

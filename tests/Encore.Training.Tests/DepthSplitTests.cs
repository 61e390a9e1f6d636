using System.IO.Compression;
using System.Text;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Lab;
using Encore.Training.Runs;

namespace Encore.Training.Tests;

/// <summary>The depth-split study: split parsing, the models it builds, what it concludes, and a tiny run end to end.</summary>
public sealed class DepthSplitTests
{
    [Theory]
    [InlineData("8+4", 8, 4)]
    [InlineData(" 10+2 ", 10, 2)]
    [InlineData("1+64", 1, 64)]
    public void SplitsParseAsEncoderPlusDecoder(string text, int encoder, int decoder)
    {
        var s = DepthSplit.Parse(text);
        Assert.Equal(new DepthSplit(encoder, decoder), s);
        Assert.Equal($"{encoder}+{decoder}", s.ToString());
    }

    [Theory]
    [InlineData("8")]
    [InlineData("8+")]
    [InlineData("0+4")]
    [InlineData("8+65")]
    [InlineData("8+4+2")]
    [InlineData("-1+4")]
    [InlineData("eight+4")]
    public void ABadSplitIsRefusedNamingTheOption(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => DepthSplit.Parse(text));
        Assert.Equal($"--splits: '{text}' is not a split ENCODER+DECODER with 1–64 layers each, e.g. 8+4", e.Message);
    }

    [Fact]
    public void EachSplitsModelHasTheParametersOfItsLayersCountedByHand()
    {
        // Per layer, with the Mu shape's options (RMSNorm weights, no biases, ungated FFN, tied embeddings): an encoder
        // block holds two norms, q/o (d × H·hd) and k/v (d × Hkv·hd) and the FFN (2·d·F); a decoder block the same plus
        // a cross-attention of the self-attention's size and its norm. Each stack ends in one norm.
        var o = DepthSplitOptions.Full();
        long d = o.DModel, attention = 2 * d * o.Heads * o.HeadDim + 2 * d * o.KvHeads * o.HeadDim, ffn = 2 * d * o.FfnDim;
        long encoderLayer = 2 * d + attention + ffn, decoderLayer = 3 * d + 2 * attention + ffn;
        const int vocab = 2048;
        foreach (var split in o.Splits)
        {
            using var model = LanguageModel.Create(o.Config(split) with { VocabSize = vocab }, 0);
            Assert.IsType<EncoderDecoderModel>(model);
            long expected = vocab * d + split.Encoder * encoderLayer + d + split.Decoder * decoderLayer + d;
            Assert.Equal(expected, model.ParameterCount);
        }
    }

    [Fact]
    public void TheReferenceIsTheFirstBalancedSplit()
    {
        Assert.Equal(new DepthSplit(6, 6), DepthSplitStudy.Reference([new(8, 4), new(6, 6), new(3, 3)]));
        Assert.Equal(new DepthSplit(8, 4), DepthSplitStudy.Reference([new(8, 4), new(10, 2)]));
    }

    static DepthSplitScore Score(string split, int e, int d, double rouge, double decodeSpeedup, double firstSpeedup = 1, double ratio = 1) =>
        new(split, e, d, 1000, ratio, 1, 1, 2.5, rouge, 10, 100 * decodeSpeedup, decodeSpeedup, firstSpeedup);

    [Fact]
    public void TheObservationsCompareEachSplitWithTheReferenceAndJudgeTheMostEncoderHeavy()
    {
        var scores = new[] { Score("6+6", 6, 6, 20.0, 1), Score("8+4", 8, 4, 19.6, 1.45, 0.9, 0.96), Score("10+2", 10, 2, 19.2, 2.5, 0.8, 0.92) };
        var lines = DepthSplitStudy.Observe(scores, "6+6");
        Assert.Equal(3, lines.Count);
        Assert.Equal("8+4 against 6+6: decode 1.45×, first token 0.90×, ROUGE-L -0.4, validation loss 0.000, 0.96× the parameters.", lines[0]);
        Assert.StartsWith("10+2 against 6+6: decode 2.50×", lines[1]);
        Assert.Equal("pass criterion (≥ 2× decoding, ≤ 1 point ROUGE-L loss) for 10+2 against 6+6: met (fast enough, quality kept).", lines[2]);

        // 1.2 points lost: not met, and the reason says which half failed.
        scores[2] = Score("10+2", 10, 2, 18.8, 2.5);
        Assert.EndsWith("not met (fast enough, quality lost).", DepthSplitStudy.Observe(scores, "6+6")[2]);
        scores[2] = Score("10+2", 10, 2, 19.2, 1.9);
        Assert.EndsWith("not met (not 2× faster, quality kept).", DepthSplitStudy.Observe(scores, "6+6")[2]);
        // Without an encoder-heavier split there is no verdict.
        Assert.Single(DepthSplitStudy.Observe([Score("6+6", 6, 6, 20, 1), Score("4+8", 4, 8, 20.5, 0.6)], "6+6"));
    }

    // A data folder with the first examples of the bundled validation split as its "training" and "validation" files.
    static string TinyData(int train, int validation)
    {
        var dir = Directory.CreateTempSubdirectory("encore-depth-split-").FullName;
        Directory.CreateDirectory(Path.Combine(dir, "debian"));
        var lines = ReadLines(TestData.Path(BundledData.DebianValidation)).Take(train + validation).ToList();
        Write(Path.Combine(dir, BundledData.DebianTrain), lines.Take(train));
        Write(Path.Combine(dir, BundledData.DebianValidation), lines.Skip(train));
        return dir;

        static IEnumerable<string> ReadLines(string path)
        {
            using var reader = new StreamReader(new GZipStream(File.OpenRead(path), CompressionMode.Decompress), Encoding.UTF8);
            while (reader.ReadLine() is { } line) yield return line;
        }

        static void Write(string path, IEnumerable<string> lines)
        {
            using var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest);
            using var w = new StreamWriter(gz, new UTF8Encoding(false));
            foreach (var l in lines) w.WriteLine(l);
        }
    }

    static DepthSplitOptions Tiny(string data) => new()
    {
        Splits = [new(1, 2), new(1, 1), new(2, 1)],
        DModel = 32, Heads = 2, KvHeads = 1, HeadDim = 16, FfnDim = 64,
        Steps = 6, WarmupSteps = 2, MaxTokens = 1024, MaxSourceTokens = 48, VocabSize = 400,
        EvalExamples = 6, MaxNewTokens = 4, SpeedPrompts = 2, SpeedNewTokens = 3, SpeedRounds = 2,
        DataDirectory = data, Seed = 5,
    };

    [Fact]
    public void ATinyStudyTrainsScoresAndTimesEverySplitAgainstTheBalancedOne()
    {
        var data = TinyData(80, 6);
        try
        {
            var progress = new List<string>();
            var r = DepthSplitStudy.Run(Tiny(data), progress.Add);
            Assert.Equal("1+1", r.Reference);
            Assert.Equal(["1+2", "1+1", "2+1"], r.Splits.Select(s => s.Split));
            Assert.Equal(80, r.TrainExamples);
            Assert.Equal(6, r.EvalExamples);
            var reference = r.Splits[1];
            Assert.Equal(1.0, reference.ParameterRatio);
            Assert.Equal(1.0, reference.DecodeSpeedup);
            Assert.Equal(1.0, reference.FirstTokenSpeedup);
            // A decoder block carries a cross-attention an encoder block lacks.
            Assert.True(r.Splits[0].Parameters > r.Splits[2].Parameters);
            Assert.True(r.Splits[2].Parameters > reference.Parameters);
            foreach (var s in r.Splits)
            {
                Assert.True(double.IsFinite(s.ValidationLoss) && s.ValidationLoss > 0, $"{s.Split}: validation loss {s.ValidationLoss}");
                Assert.InRange(s.RougeL, 0, 100);
                Assert.True(s.FirstTokenMs > 0 && s.DecodeTokensPerSecond > 0);
                Assert.Equal(s.DecodeTokensPerSecond / reference.DecodeTokensPerSecond, s.DecodeSpeedup, 12);
                Assert.Equal(reference.FirstTokenMs / s.FirstTokenMs, s.FirstTokenSpeedup, 12);
            }
            Assert.Contains(r.Baselines, b => b.Name.StartsWith("lead-", StringComparison.Ordinal));
            Assert.Contains(progress, p => p.StartsWith("timing round 2/2", StringComparison.Ordinal));
            var md = r.ToMarkdown();
            Assert.Contains("| 2+1 |", md);
            Assert.Contains("Claim (arXiv 2503.05931)", md);
            Assert.Contains("pass criterion", md);

            // The same seed trains the same models: only the timings may differ.
            var again = DepthSplitStudy.Run(Tiny(data));
            Assert.Equal(r.Splits.Select(s => (s.FinalLoss, s.ValidationLoss, s.RougeL)), again.Splits.Select(s => (s.FinalLoss, s.ValidationLoss, s.RougeL)));
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public void AMissingDataFileIsNamed()
    {
        var data = Directory.CreateTempSubdirectory("encore-depth-split-").FullName;
        try
        {
            var e = Assert.Throws<FileNotFoundException>(() => DepthSplitStudy.Run(Tiny(data)));
            Assert.Equal($"{Path.Combine(data, BundledData.DebianTrain)}: the depth-split study trains on the bundled Debian task and this file is missing", e.Message);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }
}

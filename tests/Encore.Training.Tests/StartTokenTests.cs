using Encore.Formats.Checkpoints;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Encore.Training.Data;
using Encore.Training.Runs;

namespace Encore.Training.Tests;

/// <summary>
/// A checkpoint generates from the sequences it was trained on: an encoder–decoder's decoder starts
/// from the same id in training and generation, and a decoder-only model's training rows begin
/// with the prompt ids generation builds. Checked for every tokenizer kind Encore reads.
/// </summary>
public class StartTokenTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-start-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly TextPair Pair = new("A tool to convert images between formats.", "image converter");

    public static TheoryData<string> Kinds => ["trained-bpe", "t5", "llama", "qwen2", "gpt2", "gpt2-files", "bert"];

    static TextTokenizer Load(string kind) => kind == "trained-bpe"
        ? BundledData.TrainTokenizer([Pair, new TextPair("Another package description.", "another synopsis")], 400)
        : TokenizerLoader.FromDirectory(Path.Combine(AppContext.BaseDirectory, "tokenizers", kind));

    [Theory]
    [MemberData(nameof(Kinds))]
    public void AnEncoderDecoderStartsGenerationFromTheTokenItsTrainingStartedFrom(string kind)
    {
        var tok = Load(kind);
        if (tok.PadId is null || tok.EosId is null)
        {
            // Seq2seq training needs both; the refusal must say which is missing.
            using var m0 = TrainingRun.LoadModel("tiny-encdec", tok);
            var e = Assert.Throws<ArgumentException>(() => TrainingRun.MakeObjective(ObjectiveKind.Auto, m0, tok, plainText: false));
            Assert.Contains(tok.PadId is null ? "pad" : "EOS", e.Message);
            return;
        }
        using var model = TrainingRun.LoadModel("tiny-encdec", tok);
        var data = TokenizedDataset.FromPairs([Pair], tok);
        var row = TrainingRun.MakeObjective(ObjectiveKind.Auto, model, tok, plainText: false).MakeRow(data, 0, DataRng.For(0, 0, 0));
        var dir = Path.Combine(_dir, kind);
        Checkpoint.Save(model, dir);
        using var loaded = Checkpoint.Load(dir);
        Assert.Equal(row.Inputs[0], loaded.Config.DecoderStartTokenId);
        // The source generation encodes is the source training saw.
        Assert.Equal(row.Source, new Generator(loaded, tok).EncodePrompt(Pair.Source));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ADecoderOnlyModelsTrainingRowsBeginWithThePromptGenerationBuilds(string kind)
    {
        var tok = Load(kind);
        using var model = TrainingRun.LoadModel("tiny-decoder", tok);
        if (tok.EosId is null)
        {
            // Causal LM needs an EOS to end a sequence; the refusal says so.
            var e = Assert.Throws<ArgumentException>(() => TrainingRun.MakeObjective(ObjectiveKind.Auto, model, tok, plainText: false));
            Assert.Contains("EOS", e.Message);
            return;
        }
        var data = TokenizedDataset.FromPairs([Pair], tok);
        var row = TrainingRun.MakeObjective(ObjectiveKind.Auto, model, tok, plainText: false).MakeRow(data, 0, DataRng.For(0, 0, 0));
        var prompt = new Generator(model, tok).EncodePrompt(Pair.Source);
        Assert.Equal(prompt, row.Inputs[..prompt.Length]);
        // The first position that carries loss is the one that predicts the first target token.
        Assert.Equal(prompt.Length - 1, Array.FindIndex(row.Targets, t => t != Labels.Ignore));
    }
}

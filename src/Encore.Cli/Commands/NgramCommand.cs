using System.Diagnostics;
using System.Text.Json;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Training.Data;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore ngram build</c>: the n-gram table of Superposed Decoding's interpolation (see <see cref="NgramTable"/>),
/// counted over a corpus tokenized with the model's tokenizer.
/// </summary>
internal static class NgramCommand
{
    public static Command Create()
    {
        var cmd = new Command("ngram", "N-gram tables for superposed decoding's interpolation (generate/serve --superposed --ngram FILE).");
        cmd.Subcommands.Add(CreateBuild());
        return cmd;
    }

    static Command CreateBuild()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "Directory with the model's tokenizer files (a checkpoint directory or a training run folder, for its newest checkpoint, will do).", Required = true };
        var data = new Option<string>("--data")
        {
            Description = "The corpus: JSONL(.gz), one object per line whose --field string is a document, or plain text(.gz), one document per line.",
            Required = true,
        };
        var field = new Option<string>("--field") { Description = "The JSONL field read as the document (an encoder–decoder generates its targets).", DefaultValueFactory = _ => "target" };
        var order = new Option<int>("--order") { Description = $"Longest n-gram counted (2 … {NgramTable.MaxOrder}); the standard --ngram-weights reach six-grams.", DefaultValueFactory = _ => 6 };
        var output = new Option<string>("--out") { Description = "The table file to write.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a sentence." };
        var cmd = new Command("build", "Count the n-grams of a corpus tokenized with the model's tokenizer (each document as the model sees its text: BOS first and EOS last where the tokenizer has them) and write the table.")
        {
            tokenizer, data, field, order, output, json,
        };
        cmd.SetAction(parse =>
        {
            int n = parse.GetValue(order);
            if (n is < 2 or > NgramTable.MaxOrder) throw new ArgumentException($"--order must be in [2, {NgramTable.MaxOrder}], got {n}");
            string path = parse.GetValue(data)!, name = parse.GetValue(field)!;
            if (string.IsNullOrEmpty(name)) throw new ArgumentException("--field must not be empty");
            var clock = Stopwatch.StartNew();
            var tok = TokenizerLoader.FromDirectory(Encore.Formats.Checkpoints.CheckpointDirectory.ResolveRun(Common.ModelPath(parse.GetValue(tokenizer)!, parse.GetValue(json))));
            var texts = DatasetReader.IsPairFile(path)
                ? DatasetReader.ReadPairs(path, new DatasetReadOptions { TargetField = name, SourceFields = [name] }).Select(p => p.Target).ToList()
                : DatasetReader.ReadDocuments(path, TextLayout.LinePerDocument);
            if (texts.Count == 0) throw new ArgumentException($"{path}: no documents");
            var documents = texts.Select(t => Document(tok, t));
            var table = NgramTable.Build(documents, tok.VocabSize, n, NgramTable.Fingerprint(tok));
            string outPath = parse.GetValue(output)!;
            table.Save(outPath);
            long bytes = new FileInfo(outPath).Length;
            var contexts = Enumerable.Range(2, n - 1).ToDictionary(o => o.ToString(CultureInfo.InvariantCulture), table.ContextCount);
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    data = path, output = outPath, order = n, vocab_size = tok.VocabSize, documents = texts.Count, tokens = table.TokenCount,
                    contexts, bytes, seconds = clock.Elapsed.TotalSeconds,
                }, Common.Json));
            else
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"wrote {outPath}: {n}-gram table of {table.TokenCount} tokens in {texts.Count} documents ({string.Join(", ", contexts.Select(c => $"{c.Value} contexts of order {c.Key}"))}), {bytes / 1e6:0.0} MB, in {clock.Elapsed.TotalSeconds:0.0} s"));
            return 0;
        });
        return cmd;
    }

    // A document's ids as a model reads them: BOS (a decoder-only prompt starts with it), the text, EOS (so that the table predicts endings).
    static int[] Document(TextTokenizer tok, string text)
    {
        var ids = tok.Encode(text, addSpecialTokens: false);
        return [.. tok.BosId is { } bos ? [bos] : Array.Empty<int>(), .. ids, .. tok.EosId is { } eos ? [eos] : Array.Empty<int>()];
    }
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Encore.Formats;
using Encore.Generation;
using Encore.Models;
using Encore.Tensors.Threading;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore embed</c>: sentence embeddings from an encoder-only checkpoint (BERT, a sentence-transformers
/// directory) or the encoder of an encoder–decoder, for texts given on the command line or read from a
/// file, written as JSON lines or a NumPy array. Pooling, normalization and the length limit default to
/// the checkpoint's sentence-transformers settings (see <see cref="EmbeddingOptions"/>).
/// </summary>
internal static class EmbedCommand
{
    /// <summary>Largest --input accepted (bytes): the texts are held in memory, their vectors are not.</summary>
    const long MaxInputBytes = 256L << 20;

    /// <summary>Seconds between progress lines on standard error.</summary>
    const double ProgressSeconds = 2;

    public static Command Create()
    {
        var d = new EmbeddingOptions();
        var model = new Option<string>("--model", "-m") { Description = "An encoder-only or encoder–decoder checkpoint, a sentence-transformers directory (modules.json), a training run folder, or a Hugging Face model id org/name[@revision] (fetched into the hub cache; docs/hub.md).", Required = true };
        var text = new Option<string[]>("--text") { Description = "A text to embed (repeatable)." };
        var input = new Option<string?>("--input") { Description = "A file of texts: one per line, or, for a .jsonl file, one {\"text\": \"...\"} object per line. - reads standard input." };
        var inputFormat = new Option<string?>("--input-format") { Description = "How --input is read: text (one text per line, empty lines included) or jsonl (default: jsonl for a .jsonl file, else text)." };
        var output = new Option<string?>("--out") { Description = "File to write (written to a temporary name, then renamed); default: JSON lines on standard output." };
        var format = new Option<string?>("--format") { Description = "jsonl ({\"index\": i, \"embedding\": [...]} per line, in input order) or npy (one float32 (N, D) array; needs --out). Default: npy for a .npy --out, else jsonl." };
        var batch = new Option<int>("--batch") { Description = "Texts encoded together.", DefaultValueFactory = _ => d.BatchSize };
        var pooling = new Option<string?>("--pooling") { Description = "mean, cls, max or last (default: the checkpoint's sentence-transformers pooling, else mean)." };
        var normalize = new Option<bool?>("--normalize") { Description = "true or false: scale each vector to unit length (default: true when the checkpoint's pipeline has a Normalize module or the checkpoint has no pipeline)." };
        var maxLength = new Option<int?>("--max-length") { Description = "Tokens read per text, special tokens included; longer texts are truncated (default: the pipeline's max_seq_length, else the model's positions)." };
        var json = new Option<bool>("--json") { Description = "With --out: print one JSON object describing what was written." };
        var dtype = Common.WeightDTypeOption();
        var tokenizerDir = Common.TokenizerOption();
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count).");
        var cmd = new Command("embed", "Embed texts with an encoder-only (BERT, sentence-transformers) or encoder–decoder checkpoint.")
        {
            model, text, input, inputFormat, output, format, batch, pooling, normalize, maxLength, json, dtype, tokenizerDir, threads,
        };
        cmd.SetAction(parse =>
        {
            var ct = CancellationToken.None;
            var texts = parse.GetValue(text) ?? [];
            string? file = parse.GetValue(input), path = parse.GetValue(output);
            if ((texts.Length > 0) == (file != null)) throw new ArgumentException("give --text (one or more) or --input, not both");
            string fmt = (parse.GetValue(format) ?? (path?.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) == true ? "npy" : "jsonl")).ToLowerInvariant();
            if (fmt is not ("jsonl" or "npy")) throw new ArgumentException($"--format '{fmt}' is not one of jsonl, npy");
            if (fmt == "npy" && path is null) throw new ArgumentException("--format npy writes a file: give --out FILE.npy");
            if (parse.GetValue(json) && path is null) throw new ArgumentException("--json describes the file written: give --out");
            int batchSize = parse.GetValue(batch);
            if (batchSize is < 1 or > EmbeddingOptions.MaxBatchSize) throw new ArgumentException($"--batch must be in [1, {EmbeddingOptions.MaxBatchSize}], got {batchSize}");
            if (parse.GetValue(maxLength) is < 1) throw new ArgumentException($"--max-length must be at least 1, got {parse.GetValue(maxLength)}");
            var poolingMode = parse.GetValue(pooling) is { } p ? Pooling.Parse(p, "--pooling") : (PoolingMode?)null;
            // Read the inputs before loading the model, so a bad file fails fast.
            IReadOnlyList<string> inputs = file is null ? texts : ReadInputs(file, parse.GetValue(inputFormat));

            KernelPool.Default = new KernelPool(Common.Threads(parse, threads));
            var (m, _, tokenizer, defaults) = Common.LoadEmbedding(parse.GetValue(model)!, parse.GetValue(dtype), parse.GetValue(tokenizerDir), requireEncoder: true,
                quiet: parse.GetValue(json));
            using (m)
            {
                var options = defaults with
                {
                    BatchSize = batchSize,
                    Pooling = poolingMode ?? defaults.Pooling,
                    Normalize = parse.GetValue(normalize) ?? defaults.Normalize,
                    MaxLength = parse.GetValue(maxLength) ?? defaults.MaxLength,
                };
                var embedder = new Embedder(m, tokenizer, options);
                var summary = path is null
                    ? Run(embedder, inputs, Console.OpenStandardOutput(), "jsonl", ct)
                    : WriteFile(path, s => Run(embedder, inputs, s, fmt, ct));
                if (summary.Truncated > 0)
                    Console.Error.WriteLine($"encore embed: {summary.Truncated} of {inputs.Count} texts were longer than {embedder.MaxLength()} tokens and were truncated");
                if (path is null) return 0;
                if (parse.GetValue(json))
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        model = parse.GetValue(model), output = path, format = fmt, count = inputs.Count, dimensions = embedder.Dimensions,
                        pooling = options.Pooling.Name(), normalize = options.Normalize, max_length = embedder.MaxLength(),
                        tokens = summary.Tokens, truncated = summary.Truncated, seconds = Math.Round(summary.Seconds, 3),
                    }, Common.Json));
                else
                    Console.Error.WriteLine($"wrote {path}: {inputs.Count} embeddings of {embedder.Dimensions} values ({fmt}; {options.Pooling.Name()} pooling{(options.Normalize ? ", unit length" : "")}) in {Common.Clock(TimeSpan.FromSeconds(summary.Seconds))}");
            }
            return 0;
        });
        return cmd;
    }

    sealed record Summary(long Tokens, int Truncated, double Seconds);

    static Summary WriteFile(string path, Func<Stream, Summary> write)
    {
        Summary? summary = null;
        AtomicFile.Write(path, s => summary = write(s));
        return summary!;
    }

    static readonly JsonSerializerOptions JsonLine = new(Common.Json) { WriteIndented = false };

    /// <summary>Embeds the inputs in chunks, writing each chunk's vectors in input order as they come, with progress on standard error.</summary>
    static Summary Run(Embedder embedder, IReadOnlyList<string> inputs, Stream output, string format, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        double lastReport = 0;
        long tokens = 0;
        int truncated = 0;
        // Several batches per chunk: the embedder sorts a chunk by length, so padding stays small.
        int chunk = embedder.DefaultOptions.BatchSize * 8;
        using var writer = new StreamWriter(output, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true);
        if (format == "npy")
        {
            writer.Flush();
            Npy.WriteHeader(output, "<f4", [inputs.Count, embedder.Dimensions]);
        }
        for (int start = 0; start < inputs.Count; start += chunk)
        {
            var part = inputs.Skip(start).Take(chunk).ToArray();
            EmbeddingBatch result;
            try
            {
                result = embedder.Embed(part, cancellationToken: ct);
            }
            catch (EmbeddingInputException e)
            {
                // Numbered from the chunk; the user counts from the start of the input.
                throw new ArgumentException($"text {start + e.Index}: {e.Reason}", e);
            }
            tokens += result.Tokens;
            truncated += result.TruncatedInputs;
            for (int i = 0; i < part.Length; i++)
            {
                var v = result.Vectors[i];
                if (format == "npy")
                {
                    output.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan()));
                    continue;
                }
                var line = new JsonObject { ["index"] = start + i, ["embedding"] = new JsonArray(v.Select(x => (JsonNode)x).ToArray()) };
                writer.WriteLine(line.ToJsonString(JsonLine));
            }
            writer.Flush();
            int done = Math.Min(start + chunk, inputs.Count);
            double seconds = clock.Elapsed.TotalSeconds;
            if (done < inputs.Count && seconds - lastReport >= ProgressSeconds)
            {
                lastReport = seconds;
                double rate = done / seconds;
                Console.Error.WriteLine($"encore embed: {done:N0}/{inputs.Count:N0} texts, {rate:0} per second, {Common.Clock(TimeSpan.FromSeconds((inputs.Count - done) / rate))} left");
            }
        }
        writer.Flush();
        output.Flush();
        return new Summary(tokens, truncated, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The texts of <paramref name="path"/> (standard input for <c>-</c>): every line of a text file, empty
    /// lines included, or the "text" field of every non-blank line of a JSONL file.
    /// </summary>
    internal static List<string> ReadInputs(string path, string? format)
    {
        format = (format ?? (path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) ? "jsonl" : "text")).ToLowerInvariant();
        if (format is not ("text" or "jsonl")) throw new ArgumentException($"--input-format '{format}' is not one of text, jsonl");
        IEnumerable<string> lines;
        string name = path;
        if (path == "-")
        {
            name = "<stdin>";
            lines = ReadBounded(Console.In, name);
        }
        else
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new FileNotFoundException($"{path}: no such file", path);
            if (info.Length > MaxInputBytes) throw new ArgumentException($"{path}: {info.Length} bytes; --input holds at most {MaxInputBytes}");
            lines = File.ReadLines(path);
        }
        var result = new List<string>();
        int n = 0;
        foreach (var line in lines)
        {
            n++;
            if (format == "text")
            {
                result.Add(line);
                continue;
            }
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(line);
            }
            catch (JsonException e)
            {
                throw new ArgumentException($"{name}:{n}: not valid JSON ({e.Message.Split(" LineNumber:")[0]})");
            }
            if (node is not JsonObject obj || !obj.TryGetPropertyValue("text", out var t) || t is not JsonValue v || !v.TryGetValue<string>(out var s))
                throw new ArgumentException($"{name}:{n}: expected a JSON object with a \"text\" string");
            result.Add(s);
        }
        if (result.Count == 0) throw new ArgumentException($"{name}: no texts");
        return result;
    }

    static IEnumerable<string> ReadBounded(TextReader reader, string name)
    {
        long chars = 0;
        while (reader.ReadLine() is { } line)
        {
            chars += line.Length + 1;
            if (chars > MaxInputBytes) throw new ArgumentException($"{name}: more than {MaxInputBytes} characters; --input holds at most {MaxInputBytes} bytes");
            yield return line;
        }
    }
}

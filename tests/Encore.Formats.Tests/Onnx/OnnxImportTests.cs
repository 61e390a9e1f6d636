using System.Text.Json.Nodes;
using Encore.Formats.Checkpoints;
using Encore.Formats.Onnx;
using Encore.Formats.Tests.Parity;
using Encore.Models;
using Encore.Tensors.Kernels;

namespace Encore.Formats.Tests.Onnx;

/// <summary>
/// The ONNX importer on the tiny BERT fixture exported as torch exports a BertModel (OnnxFixture): the
/// checkpoint it writes must hold exactly the fixture's weights, so the hidden states match the PyTorch
/// reference of tools/reference/bert_reference.py; variants cover float16 weights, Transpose nodes and
/// the "bert." prefix; hostile files fail naming the file.
/// </summary>
public sealed class OnnxImportTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-onnx-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Write(byte[] bytes, string name = "model.onnx", string? folder = null)
    {
        var dir = Path.Combine(_dir, folder ?? Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    string Out() => Path.Combine(_dir, "out-" + Guid.NewGuid().ToString("N")[..8]);

    static float HiddenError(string dir)
    {
        var e = ParityFixtures.Expected("bert");
        using var model = (EncoderOnlyModel)Checkpoint.Load(dir);
        Assert.False(model.HasMaskedLmHead);
        using var hidden = model.Forward(ParityFixtures.Ints(e["input_ids"]), batch: 2, ParityFixtures.Ints(e["lengths"]), ParityFixtures.Ints(e["token_type_ids"]));
        return ParityFixtures.MaxAbsError(ParityFixtures.Floats(e["hidden"]), hidden.Value.ToFloatArray());
    }

    [Fact]
    public void ATorchStyleExportImportsWithTheFixturesWeightsAndAnInferredConfig()
    {
        var onnx = Write(OnnxFixture.TinyBert());
        var r = OnnxBertImport.Convert(onnx, Out());
        Assert.Equal("the graph", r.ConfigSource);
        var c = r.Config;
        Assert.Equal((64, 32, 2, 4, 8, 48, 32, 2), (c.VocabSize, c.DModel, c.EncoderLayers, c.Heads, c.HeadDim, c.FfnDim, c.MaxPositions, c.TypeVocabSize));
        Assert.Equal((ActivationKind.GeluErf, 1e-12f, false), (c.Activation, c.NormEps, c.MaskedLmHead));
        // 12 Linear weights are named through MatMul → Add(bias); the pooler's Gemm weight has its own name.
        Assert.Equal(12, r.GraphNamedTensors);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(r.OutputDirectory, "config.json")))!;
        Assert.Equal(1e-12, json["layer_norm_eps"]!.GetValue<double>());

        using (var written = SafetensorsCheckpoint.Open(r.OutputDirectory))
        using (var fixture = SafetensorsCheckpoint.Open(ParityFixtures.Dir("bert")))
        {
            Assert.Contains("pooler.dense.weight", written.Names);
            foreach (var name in written.Names.Where(n => !n.StartsWith("pooler.", StringComparison.Ordinal)))
            {
                using var a = written.Read(name);
                using var b = fixture.Read("bert." + name);
                Assert.Equal(b.Shape.ToArray(), a.Shape.ToArray());
                Assert.Equal(b.ToFloatArray(), a.ToFloatArray());
            }
        }
        Assert.InRange(HiddenError(r.OutputDirectory), 0, 1e-4f);
    }

    [Fact]
    public void Float16WeightsTransposeNodesAndThePrefixImportToo()
    {
        var r = OnnxBertImport.Convert(Write(OnnxFixture.TinyBert(new() { TransposeNodes = true, Prefixed = true })), Out());
        Assert.Equal(12, r.GraphNamedTensors);
        Assert.InRange(HiddenError(r.OutputDirectory), 0, 1e-4f);

        var half = OnnxBertImport.Convert(Write(OnnxFixture.TinyBert(new() { Float16 = true })), Out());
        using (var st = SafetensorsCheckpoint.Open(half.OutputDirectory))
            Assert.Equal("F16", st.Entry("encoder.layer.0.attention.self.query.weight").DType);
        // float16 rounding of the weights moves the hidden states, but not far.
        Assert.InRange(HiddenError(half.OutputDirectory), 1e-6f, 0.05f);
    }

    [Fact]
    public void AConfigJsonBesideTheFileOrInTheParentOfAnOnnxFolderIsUsed()
    {
        // The Hugging Face layout: config.json and vocab.txt at the root, the export in onnx/.
        var root = Path.Combine(_dir, "hub");
        var onnx = Write(OnnxFixture.TinyBert(new() { NoHeadShape = true }), folder: Path.Combine("hub", "onnx"));
        File.Copy(Path.Combine(ParityFixtures.Dir("bert"), "config.json"), Path.Combine(root, "config.json"));
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "bert", "vocab.txt"), Path.Combine(root, "vocab.txt"));
        var r = OnnxBertImport.Convert(onnx, Out());
        Assert.Equal(Path.Combine(root, "config.json"), r.ConfigSource);
        Assert.Contains("vocab.txt", r.CopiedFiles);
        Assert.True(File.Exists(Path.Combine(r.OutputDirectory, "vocab.txt")));
        Assert.InRange(HiddenError(r.OutputDirectory), 0, 1e-4f);
    }

    [Fact]
    public void ASentenceTransformersPipelineBesideTheFileIsCopiedFlat()
    {
        var root = Path.Combine(_dir, "st");
        var onnx = Write(OnnxFixture.TinyBert(), folder: Path.Combine("st", "onnx"));
        SentenceTransformersConfigTests.WritePipeline(root, transformerPath: "", pooling: "pooling_mode_cls_token", normalize: true, maxSeq: 16);
        var r = OnnxBertImport.Convert(onnx, Out());
        var st = SentenceTransformersConfig.Read(r.OutputDirectory)!;
        Assert.Equal((PoolingMode.Cls, true, 16), (st.Pooling, st.Normalize, st.MaxSeqLength));
        Assert.Equal(r.OutputDirectory, st.TransformerDirectory);
    }

    [Fact]
    public void GraphsThatDoNotFitFailNamingWhatIsMissing()
    {
        var e = Assert.Throws<CheckpointFormatException>(() => OnnxBertImport.Convert(Write(OnnxFixture.TinyBert(new() { NoHeadShape = true })), Out()));
        Assert.Contains("cannot tell the number of attention heads", e.Message);
        Assert.Contains("--config", e.Message);

        var onnx = Write(OnnxFixture.TinyBert(new() { UnnamedQuery = true }));
        e = Assert.Throws<CheckpointFormatException>(() => OnnxBertImport.Convert(onnx, Out()));
        Assert.StartsWith(onnx + ":", e.Message);
        Assert.Contains("encoder.layer.1.attention.self.query.weight", e.Message);
        Assert.Contains("MatMul weights the graph does not name", e.Message);
        Assert.Empty(Directory.GetDirectories(_dir, ".out-*"));

        // A config of another model type beside the file.
        var dir = Path.GetDirectoryName(Write(OnnxFixture.TinyBert(), folder: "llama-config"))!;
        File.Copy(Path.Combine(ParityFixtures.Dir("llama"), "config.json"), Path.Combine(dir, "config.json"));
        e = Assert.Throws<CheckpointFormatException>(() => OnnxBertImport.Convert(Path.Combine(dir, "model.onnx"), Out()));
        Assert.Contains("model_type 'llama'; the ONNX importer reads BERT encoders", e.Message);

        // The output folder is never overwritten.
        var existing = Out();
        Directory.CreateDirectory(existing);
        File.WriteAllText(Path.Combine(existing, "keep.txt"), "x");
        Assert.Contains("already exists", Assert.Throws<IOException>(() => OnnxBertImport.Convert(Write(OnnxFixture.TinyBert()), existing)).Message);
    }

    public static TheoryData<string, string> HostileCases => new()
    {
        { "empty", "no graph" },
        { "random", "not a valid ONNX model" },
        { "huge-length", "runs past its message" },
        { "raw-data-short", "holds 3 values" },
        { "too-many-dims", "more than 8 dimensions" },
        { "external", "external data" },
        { "negative-dim", "has dimension" },
        { "long-name", "a string of 5000 bytes" },
        { "int64-as-float", "which is not read" },
    };

    static byte[] Hostile(string kind)
    {
        static byte[] ModelWithTensor(byte[] tensor)
        {
            var g = new List<byte>();
            OnnxFixture.Bytes(g, 5, tensor);
            var m = new List<byte>();
            OnnxFixture.Int(m, 1, 7);
            OnnxFixture.Bytes(m, 7, [.. g]);
            return [.. m];
        }
        var t = new List<byte>();
        switch (kind)
        {
            case "empty": return [];
            case "random": return Enumerable.Range(0, 4096).Select(i => (byte)(i * 7919 % 251 + 3)).ToArray();
            case "huge-length":
                // graph (field 7) claims 2^40 bytes.
                var h = new List<byte>();
                OnnxFixture.Varint(h, 7 << 3 | 2);
                OnnxFixture.Varint(h, 1UL << 40);
                return [.. h, 1, 2, 3];
            case "raw-data-short":
                OnnxFixture.Int(t, 1, 4);
                OnnxFixture.Int(t, 2, 1);
                OnnxFixture.Str(t, 8, "w");
                OnnxFixture.Bytes(t, 9, new byte[12]);
                return ModelWithTensor([.. t]);
            case "too-many-dims":
                for (int i = 0; i < 9; i++) OnnxFixture.Int(t, 1, 1);
                OnnxFixture.Int(t, 2, 1);
                return ModelWithTensor([.. t]);
            case "external":
                OnnxFixture.Int(t, 1, 2);
                OnnxFixture.Int(t, 2, 1);
                OnnxFixture.Str(t, 8, "w");
                OnnxFixture.Int(t, 14, 1);
                return ModelWithTensor([.. t]);
            case "negative-dim":
                OnnxFixture.Int(t, 1, -5);
                OnnxFixture.Int(t, 2, 1);
                return ModelWithTensor([.. t]);
            case "long-name":
                OnnxFixture.Str(t, 8, new string('n', 5000));
                return ModelWithTensor([.. t]);
            case "int64-as-float":
                OnnxFixture.Int(t, 1, 1);
                OnnxFixture.Int(t, 2, 7);
                OnnxFixture.Bytes(t, 4, new byte[4]);
                return ModelWithTensor([.. t]);
        }
        throw new ArgumentException(kind);
    }

    [Theory]
    [MemberData(nameof(HostileCases))]
    public void HostileFilesFailNamingTheFile(string kind, string expected)
    {
        var path = Write(Hostile(kind));
        var e = Assert.Throws<CheckpointFormatException>(() => OnnxModel.Open(path).Dispose());
        Assert.StartsWith(path + ":", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void EveryTruncationOfAValidFileFailsCleanly()
    {
        var bytes = OnnxFixture.TinyBert();
        var path = Path.Combine(_dir, "cut.onnx");
        // Cut inside the first graph bytes, every node, and through the weights; the last 4 bytes are the
        // opset record, without which the file is still a model.
        for (int cut = 0; cut < bytes.Length - 4; cut += cut < 2048 ? 1 : 997)
        {
            File.WriteAllBytes(path, bytes[..cut]);
            var e = Record.Exception(() => OnnxModel.Open(path).Dispose());
            Assert.True(e is CheckpointFormatException && e.Message.StartsWith(path + ":", StringComparison.Ordinal),
                $"cut at {cut}: {e?.GetType().Name}: {e?.Message}");
        }
    }

    [Fact]
    public void TheCommittedFuzzSeedIsThisExport() =>
        // fuzz/corpus/onnx/tiny-bert.onnx seeds the onnx fuzz target and the CLI tests; it must stay what OnnxFixture writes.
        Assert.Equal(OnnxFixture.TinyBert(), File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "onnx", "tiny-bert.onnx")));

    [Fact]
    public void TheReaderExposesTheGraph()
    {
        using var m = OnnxModel.Open(Write(OnnxFixture.TinyBert()));
        Assert.Equal((7L, "pytorch", 13L), (m.IrVersion, m.ProducerName, m.OpsetVersion));
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], m.Inputs);
        var heads = m.Initializers.Single(t => t.Name == "heads");
        Assert.Equal([4L], m.ReadIntegers(heads)!);
        var eps = m.Nodes.First(n => n.OpType == "Constant" && n.Outputs[0] == "eps");
        Assert.Equal(1e-12f, m.ReadScalar(eps.Attributes["value"].Tensor!));
        var gemm = m.Nodes.Single(n => n.OpType == "Gemm");
        Assert.Equal(1, gemm.Int("transB", 0));
        using var w = m.ReadTensor(m.Initializers.Single(t => t.Name == "embeddings.LayerNorm.weight"));
        Assert.Equal([32], w.Shape.ToArray());
    }
}

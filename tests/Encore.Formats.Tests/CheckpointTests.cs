using Encore.Formats.Checkpoints;
using Encore.Models;
using Encore.Tensors;

namespace Encore.Formats.Tests;

public class CheckpointTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-ck-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("tiny-encdec")]
    [InlineData("tiny-decoder")]
    [InlineData("tiny-encoder")]
    public void SavedEncoreCheckpointsLoadBackIdentically(string preset)
    {
        using var model = LanguageModel.Create(Presets.Get(preset), seed: 9);
        var dir = Path.Combine(_dir, preset);
        Checkpoint.Save(model, dir);
        using var back = Checkpoint.Load(dir);
        Assert.Equal(model.Config, back.Config);
        foreach (var p in model.Parameters.All)
            Assert.Equal(p.Value.ToFloatArray(), back.Parameters[p.Name].Value.ToFloatArray());
        // Mapped loading keeps the file's dtype, read-only, for inference.
        Checkpoint.Save(model, dir + "-bf16", dtype: DType.BF16);
        using var mapped = Checkpoint.Load(dir + "-bf16", new CheckpointLoadOptions { MapWeights = true });
        var w = mapped.Parameters[LanguageModel.EmbedTokens];
        Assert.Equal(DType.BF16, w.Value.DType);
        Assert.False(w.Trainable);
    }

    [Fact]
    public void RelativeBiasTablesStayF32WhenMatricesGoCompact()
    {
        var relative = new PositionConfig { Kind = PositionKind.T5Relative, RelativeBuckets = 32, RelativeMaxDistance = 128 };
        using var model = LanguageModel.Create(Presets.Get("tiny-encdec") with { EncoderPositions = relative, DecoderPositions = relative }, seed: 9);
        var dir = Path.Combine(_dir, "relative-bf16");
        Checkpoint.Save(model, dir, dtype: DType.BF16);
        using var mapped = Checkpoint.Load(dir, new CheckpointLoadOptions { MapWeights = true });
        model.ConvertWeights(DType.BF16);
        foreach (var m in new[] { model, mapped })
        {
            Assert.Equal(DType.BF16, m.Parameters[LanguageModel.EmbedTokens].Value.DType);
            Assert.Equal(DType.F32, m.Parameters["encoder.relative_attention_bias.weight"].Value.DType);
            Assert.Equal(DType.F32, m.Parameters["decoder.relative_attention_bias.weight"].Value.DType);
        }
    }

    [Theory]
    [InlineData("tiny-encdec", DType.Q4_0)]
    [InlineData("tiny-decoder", DType.Q8_0)]
    public void QuantizedCheckpointsLoadMappedAsStoredAndMatchQuantizingAtLoad(string preset, DType dtype)
    {
        using var model = LanguageModel.Create(Presets.Get(preset), seed: 4);
        var dir = Path.Combine(_dir, preset + "-" + dtype.Name());
        Checkpoint.Save(model, dir, dtype: dtype);
        using var mapped = Checkpoint.Load(dir, new CheckpointLoadOptions { MapWeights = true });
        model.ConvertWeights(dtype);
        int quantized = 0;
        foreach (var p in model.Parameters.All)
        {
            var q = mapped.Parameters[p.Name].Value;
            Assert.Equal(p.Value.DType, q.DType);
            Assert.Equal(p.Value.ToFloatArray(), q.ToFloatArray());
            if (q.DType == dtype) quantized++;
            else Assert.Equal(DType.F32, q.DType); // norms and anything not whole blocks of 32
        }
        Assert.True(quantized >= 4, $"{quantized} matrices were quantized");
        // Loaded for training (not mapped), every weight comes back dequantized to f32.
        using var f32 = Checkpoint.Load(dir);
        Assert.All(f32.Parameters.All, p => Assert.Equal(DType.F32, p.Value.DType));
        Assert.Equal(mapped.Parameters[LanguageModel.EmbedTokens].Value.ToFloatArray(), f32.Parameters[LanguageModel.EmbedTokens].Value.ToFloatArray());
    }

    // A Q4_0 checkpoint loaded for inference gets its matrices (rows of 256 and 512 here) regrouped as Q4_0R8 where the
    // octet GEMV exists, with the same values (32-wide rows stay Q4_0: the tiny-encdec case above); saved again as q4_0 it writes the checkpoint's bytes; and
    // where the octet kernel is not taken, the layout goes back to Q4_0, byte for byte.
    [Fact]
    public void Q4_0MatricesAreRegroupedForTheKernelAndSaveBackAsStored()
    {
        var config = Presets.Get("tiny-encdec") with { DModel = 256, HeadDim = 64, FfnDim = 512, VocabSize = 96 };
        using var model = LanguageModel.Create(config, seed: 4);
        var dir = Path.Combine(_dir, "q4-regroup");
        Checkpoint.Save(model, dir, dtype: DType.Q4_0);
        using var mapped = Checkpoint.Load(dir, new CheckpointLoadOptions { MapWeights = true });
        var stored = mapped.Parameters.All.Where(p => p.Value.DType == DType.Q4_0)
            .ToDictionary(p => p.Name, p => (p.Value.ToFloatArray(), Bytes(p.Value)));
        bool regroup = Encore.Tensors.Kernels.Gemv.RegroupsQ4();
        mapped.UseKernelLayouts();
        int regrouped = 0;
        foreach (var (name, (values, _)) in stored)
        {
            var t = mapped.Parameters[name].Value;
            bool whole = t.Shape[^1] % 256 == 0;
            Assert.Equal(regroup && whole ? DType.Q4_0R8 : DType.Q4_0, t.DType);
            Assert.Equal(values, t.ToFloatArray());
            if (t.DType == DType.Q4_0R8) regrouped++;
        }
        Assert.True(regroup ? regrouped >= 4 : regrouped == 0, $"{regrouped} matrices regrouped");
        var again = Path.Combine(_dir, "q4-regroup-again");
        Checkpoint.Save(mapped, again, dtype: DType.Q4_0);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "model.safetensors")), File.ReadAllBytes(Path.Combine(again, "model.safetensors")));
        using (Simd.Override(SimdWidth.V256)) mapped.UseKernelLayouts();
        foreach (var (name, (_, bytes)) in stored)
        {
            Assert.Equal(DType.Q4_0, mapped.Parameters[name].Value.DType);
            Assert.Equal(bytes, Bytes(mapped.Parameters[name].Value));
        }

        static byte[] Bytes(Tensor t) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.AsReadOnlySpan<Encore.Tensors.Numerics.BlockQ4_0>()).ToArray();
    }

    [Fact]
    public void MissingOrMismatchedTensorsAndUnknownTypesFailClearly()
    {
        var dir = Path.Combine(_dir, "m");
        using (var model = LanguageModel.Create(Presets.Get("tiny-decoder")))
            Checkpoint.Save(model, dir);
        var config = File.ReadAllText(Path.Combine(dir, "config.json"));
        File.WriteAllText(Path.Combine(dir, "config.json"), config.Replace("\"d_model\": 32", "\"d_model\": 16"));
        Assert.Contains("needs f32[64, 16]", Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.Replace("\"encore\"", "\"gpt-j\""));
        Assert.Contains("model_type 'gpt-j' is not supported", Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{");
        Assert.Contains("not valid JSON", Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(dir)).Message);
        Assert.Throws<FileNotFoundException>(() => Checkpoint.Load(Path.Combine(_dir, "nowhere")));
    }
}

public class OptimizerCheckpointTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("encore-opt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static float Step(LanguageModel m, Encore.Autograd.Optim.Optimizer opt, int seed)
    {
        var r = new Random(seed);
        var ids = Enumerable.Range(0, 8).Select(_ => r.Next(2, 64)).ToArray();
        opt.ZeroGrad();
        using var tape = Encore.Autograd.Tape.Record();
        var logits = ((DecoderOnlyModel)m).Forward(ids, 1);
        var loss = Encore.Autograd.Ops.CrossEntropy(Encore.Autograd.Ops.Reshape(logits, 8, 64), ids);
        float value = loss.Value.ToFloatArray()[0];
        tape.Backward(loss);
        opt.Update();
        return value;
    }

    [Fact]
    public void ResumingFromASavedCheckpointAndOptimizerIsBitIdentical()
    {
        using var a = LanguageModel.Create(Presets.Get("tiny-decoder"), seed: 2);
        using var optA = new Encore.Autograd.Optim.AdamW(a.Parameters.All) { LearningRate = 1e-2 };
        for (int i = 0; i < 3; i++) Step(a, optA, i);
        Checkpoint.Save(a, _dir);
        OptimizerCheckpoint.Save(optA, _dir);
        var expected = Enumerable.Range(3, 3).Select(i => Step(a, optA, i)).ToArray();

        using var b = Checkpoint.Load(_dir);
        using var optB = new Encore.Autograd.Optim.AdamW(b.Parameters.All) { LearningRate = 1e-2 };
        OptimizerCheckpoint.Load(optB, _dir);
        Assert.Equal(3, optB.Step);
        var resumed = Enumerable.Range(3, 3).Select(i => Step(b, optB, i)).ToArray();
        Assert.Equal(expected, resumed);

        using var sgd = new Encore.Autograd.Optim.Sgd(b.Parameters.All);
        Assert.Contains("not Sgd", Assert.Throws<CheckpointFormatException>(() => OptimizerCheckpoint.Load(sgd, _dir)).Message);
    }
}

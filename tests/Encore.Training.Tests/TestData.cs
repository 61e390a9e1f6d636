using Encore.Formats.Tokenization;
using Encore.Training.Data;

namespace Encore.Training.Tests;

/// <summary>The bundled data and one tokenizer trained on it, shared by the tests.</summary>
internal static class TestData
{
    static readonly Lazy<ByteLevelBpeTextTokenizer> LazyTokenizer = new(() =>
        BundledData.TrainTokenizer(DatasetReader.ReadPairs(Path(BundledData.WordNetTrain)).Concat(DatasetReader.ReadPairs(Path(BundledData.LongInputTrain))), vocabSize: 1024));

    public static string Dir => System.IO.Path.Combine(AppContext.BaseDirectory, "data");

    public static string Path(string relative) => System.IO.Path.Combine(Dir, relative);

    public static ByteLevelBpeTextTokenizer Tokenizer => LazyTokenizer.Value;
}

/// <summary>A temporary file deleted on dispose.</summary>
internal sealed class TempFile : IDisposable
{
    public TempFile(byte[] content)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"encore-data-{Guid.NewGuid():N}.txt");
        File.WriteAllBytes(Path, content);
    }

    public TempFile(string content) : this(System.Text.Encoding.UTF8.GetBytes(content)) { }

    public string Path { get; }

    public void Dispose() => File.Delete(Path);
}

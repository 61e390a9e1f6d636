namespace Encore.Training.Data;

/// <summary>A data file that cannot be read as a dataset; the message names the file and, where there is one, the line.</summary>
public sealed class DatasetFormatException : IOException
{
    /// <summary>An error in <paramref name="file"/>, at <paramref name="line"/> (1-based) when positive.</summary>
    public DatasetFormatException(string file, long line, string problem, Exception? inner = null)
        : base(line > 0 ? $"{file}, line {line}: {problem}" : $"{file}: {problem}", inner)
    {
        File = file;
        Line = line;
    }

    /// <summary>The file.</summary>
    public string File { get; }

    /// <summary>1-based line number, or 0 for an error about the whole file.</summary>
    public long Line { get; }
}

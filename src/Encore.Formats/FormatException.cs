namespace Encore.Formats;

/// <summary>A file is not valid for its format. The message names the file and the problem.</summary>
public sealed class CheckpointFormatException(string message, Exception? inner = null) : IOException(message, inner);

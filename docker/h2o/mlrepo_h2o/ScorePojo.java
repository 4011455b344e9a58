// Scores an H2O POJO on a CSV of features: the Java half of `python -m mlrepo_h2o.predict`.
//
//   java -cp classes:h2o-genmodel.jar ScorePojo <pojo class> <input.csv> <output.csv> <classes.txt>
//
// input.csv: a header naming the model's feature columns, then one row of numbers per line.
// output.csv: one predicted class label per input row, in input order, no header.
// classes.txt: the model's response domain (its class labels), one per line.
import hex.genmodel.GenModel;
import hex.genmodel.easy.EasyPredictModelWrapper;
import hex.genmodel.easy.RowData;
import hex.genmodel.easy.prediction.MultinomialModelPrediction;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;

public final class ScorePojo {
  private ScorePojo() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: ScorePojo <pojo class> <input.csv> <output.csv> <classes.txt>");
      System.exit(2);
    }
    GenModel pojo = (GenModel) Class.forName(args[0]).getDeclaredConstructor().newInstance();
    EasyPredictModelWrapper model = new EasyPredictModelWrapper(pojo);
    int rows = 0;
    try (BufferedReader in = Files.newBufferedReader(Paths.get(args[1]), StandardCharsets.UTF_8);
        BufferedWriter out = Files.newBufferedWriter(Paths.get(args[2]), StandardCharsets.UTF_8)) {
      String[] header = in.readLine().split(",", -1);
      String line;
      while ((line = in.readLine()) != null) {
        String[] values = line.split(",", -1);
        RowData row = new RowData();
        for (int i = 0; i < header.length; i++) {
          row.put(header[i], Double.valueOf(values[i]));
        }
        MultinomialModelPrediction prediction = model.predictMultinomial(row);
        out.write(prediction.label);
        out.newLine();
        rows++;
      }
    }
    try (BufferedWriter out = Files.newBufferedWriter(Paths.get(args[3]), StandardCharsets.UTF_8)) {
      for (String label : pojo.getDomainValues(pojo.getResponseIdx())) {
        out.write(label);
        out.newLine();
      }
    }
    System.out.println("ScorePojo: scored " + rows + " rows with " + args[0]);
  }
}

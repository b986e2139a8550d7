"""A fixed set of sentences: the parity check of the text encoder, the build's int8
comparison and the latency measurements. The quality gate's probe set and the held-out set
are elsewhere (`texts/`), so no gate or measurement reuses what the build checked."""

SENTENCES = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome.",
    "The cat sits outside.",
    "The new movie is so great.",
    "A quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "Where can I find the nearest train station?",
    "Stainless steel water bottle, 750 ml, keeps drinks cold for 24 hours.",
    "Wireless noise-cancelling headphones with 30-hour battery life.",
    "Organic green tea, 100 bags.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "The stock market fell sharply on Monday.",
    "Researchers discovered a new species of frog in the rainforest.",
    "Please deliver the package to the back door.",
    "The meeting has been moved to Thursday afternoon.",
    "I would like to cancel my subscription.",
    "Gradient descent minimises a differentiable loss function.",
    "Triton Inference Server serves models from a model repository.",
    "Caching repeated requests saves compute.",
    "It rained all day, so the match was cancelled.",
    "She sells sea shells by the sea shore.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le chat est assis sur le tapis.",
    "日本語のテキストも埋め込みできます。",
    "An emoji at the end 🙂",
    "Short.",
    "This is a much longer sentence that goes on for a while, listing apples, pears, plums, "
    "cherries, apricots, peaches and nectarines, so that the tokenizer has to produce many "
    "more tokens than for the others and padding matters.",
)

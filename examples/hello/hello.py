name = "World"

print(f"Hello {name}!")
